import CHiredis
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import Synchronization

/// A `SUBSCRIBE` on its own connection and OS thread, kept up across outages: it
/// reconnects every `probeInterval` and subscribes again. Messages go to `onMessage`;
/// after each (re)subscription `onSubscribed` runs, since messages published while it was
/// away are lost (pub/sub keeps nothing) and whoever relies on them must resynchronise.
public final class RedisSubscriber: Service, Sendable, CustomStringConvertible {
    public typealias MessageHandler = @Sendable (_ channel: String, _ message: [UInt8]) -> Void

    private let configuration: RedisConfiguration
    private let channels: [String]
    private let onMessage: MessageHandler
    private let onSubscribed: @Sendable () -> Void
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)

    public var description: String { "RedisSubscriber(\(channels.joined(separator: ",")))" }

    public init(
        configuration: RedisConfiguration, channels: [String], logger: Logger, onSubscribed: @escaping @Sendable () -> Void = {},
        onMessage: @escaping MessageHandler
    ) {
        precondition(!channels.isEmpty, "subscribe to at least one channel")
        self.configuration = configuration
        self.channels = channels
        self.onMessage = onMessage
        self.onSubscribed = onSubscribed
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                    let thread = Thread { [self] in
                        loop()
                        finished.resume()
                    }
                    thread.name = "warren.redis.subscriber"
                    thread.start()
                }
            } onCancel: {
                stopping.store(true, ordering: .relaxed)
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }

    private var stopped: Bool { stopping.load(ordering: .relaxed) }

    /// Connect, subscribe, read until the connection fails or the service stops; again.
    private func loop() {
        var loggedDown = false
        while !stopped {
            var opened: HiredisContext.Context?
            do throws(RedisError) {
                let context = try HiredisContext.open(configuration)
                opened = context
                _ = try HiredisContext.command(context, [Array("SUBSCRIBE".utf8)] + channels.map { Array($0.utf8) })
            } catch {
                if let opened { redisFree(opened) }
                if !loggedDown { logger.warning("redis.subscriber.down", metadata: ["error": "\(error)"]) }
                loggedDown = true
                pause(configuration.probeInterval)
                continue
            }
            guard let context = opened else { continue }
            // The command returned the first channel's confirmation; read the others.
            var failed = false
            for _ in channels.dropFirst() where !failed {
                failed = nextReply(context, wait: true) == nil
            }
            if !failed {
                if loggedDown { logger.info("redis.subscriber.resubscribed") }
                loggedDown = false
                onSubscribed()
                failed = read(context)
            }
            redisFree(context)
            if failed && !stopped {
                logger.warning("redis.subscriber.down", metadata: ["error": "the subscription's connection was lost"])
                loggedDown = true
                pause(configuration.probeInterval)
            }
        }
    }

    /// Delivers messages until the connection fails (true) or the service stops (false).
    private func read(_ context: HiredisContext.Context) -> Bool {
        while !stopped {
            guard let reply = nextReply(context, wait: false) else { return true }
            guard case .array(let parts)? = reply, parts.count == 3, parts[0].text == "message",
                let channel = parts[1].text, case .string(let message) = parts[2]
            else { continue }
            onMessage(channel, message)
        }
        return false
    }

    /// The next complete reply: `.some(nil)` when none arrived within 250 ms (so `stopped`
    /// is checked), nil when the connection failed.
    private func nextReply(_ context: HiredisContext.Context, wait: Bool) -> RedisValue?? {
        while !stopped {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { return nil }
            if let raw {
                defer { freeReplyObject(raw) }
                return .some(RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self)))
            }
            var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 250)
            if ready < 0 && errno != EINTR { return nil }
            if ready > 0 && redisBufferRead(context) != REDIS_OK { return nil }
            if ready == 0 && !wait { return .some(nil) }
        }
        return .some(nil)
    }

    private func pause(_ duration: Duration) {
        let until = ContinuousClock.now + duration
        while !stopped && ContinuousClock.now < until { usleep(50_000) }
    }
}
