import Blocking
import CLibPQ
import Glibc
import Logging
import ServiceLifecycle

/// A connection that `LISTEN`s on one channel, as a `Service`: `run()` starts its thread,
/// connects, and calls `onNotification` whenever `NOTIFY` arrives, until graceful shutdown
/// or cancellation; then it closes the connection and its thread ends. Nothing runs before
/// `run()` or after it returns.
///
/// Notifications only say "look now": payloads are not kept. One sent while the listener
/// was disconnected is gone, so every (re)connection also calls `onNotification`, and
/// owners still poll at some interval. While the database cannot be reached it tries
/// again every `retryInterval`, logging the outage once and the recovery once.
public final class PostgresListener: Sendable {
    private let conninfo: String
    private let channel: String
    private let retryInterval: Duration
    private let logger: Logger
    private let onNotification: @Sendable () -> Void

    public init(
        conninfo: String, channel: String, retryInterval: Duration = .seconds(5), logger: Logger,
        onNotification: @escaping @Sendable () -> Void
    ) {
        self.conninfo = conninfo
        self.channel = channel
        self.retryInterval = retryInterval
        self.logger = logger
        self.onNotification = onNotification
    }
}

extension PostgresListener: Service {
    public func run() async throws {
        let session = try ListenSession(conninfo: conninfo, channel: channel, notices: LibPQNotices(logger: logger))
        let thread = BlockingThread(name: "warren.postgres.listen")
        var unavailable = false
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    do {
                        let outcome = try await thread.run { try session.waitOnce(timeout: .seconds(10)) }
                        if unavailable, outcome != .stopped {
                            unavailable = false
                            logger.info("postgres.listen.recovered", metadata: ["channel": "\(channel)"])
                        }
                        if outcome == .connected || outcome == .notified { onNotification() }
                    } catch {
                        if !unavailable {
                            unavailable = true
                            logger.warning(
                                "postgres.listen.unavailable",
                                metadata: ["channel": "\(channel)", "error": "\(error)", "retry_in": "\(retryInterval)"])
                        }
                        _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.retryInterval) }
                    }
                }
            } onGracefulShutdown: {
                session.stop()
            }
        } onCancel: {
            session.stop()
        }
        _ = try? await thread.run { session.close() }
    }
}

/// The listener's connection and its wake-up descriptor. Confined to the listener's
/// thread, except `stop()`, which only writes to the eventfd (thread-safe by the kernel).
private final class ListenSession: @unchecked Sendable {
    enum Outcome: Equatable {
        case connected, notified, timedOut, stopped
    }

    private let conninfo: String
    private let channel: String
    /// The server's notices (a session killed by an administrator) go to the logger.
    private let notices: LibPQNotices
    private var libpq: LibPQConnection?
    /// Readable once `stop()` was called: ends the wait in `poll` at once.
    private let stopper: Int32

    init(conninfo: String, channel: String, notices: LibPQNotices) throws {
        self.conninfo = conninfo
        self.channel = channel
        self.notices = notices
        stopper = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard stopper >= 0 else {
            throw PostgresError(code: .connectionFailed, message: "eventfd failed: errno \(errno)", context: "LISTEN")
        }
    }

    deinit { Glibc.close(stopper) }

    func stop() {
        var one: UInt64 = 1
        _ = Glibc.write(stopper, &one, MemoryLayout<UInt64>.size)
    }

    /// Connects if needed (and says so), else waits up to `timeout` for notifications.
    /// Throws when the connection cannot be made or is lost; the next call reconnects.
    func waitOnce(timeout: Duration) throws -> Outcome {
        guard let libpq, libpq.isConnected else {
            self.libpq?.finish()
            self.libpq = nil
            self.libpq = try connect()
            return .connected
        }
        do {
            if try drain(libpq) { return .notified }
            var descriptors = [
                pollfd(fd: libpq.socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopper, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, Int32(timeout / .milliseconds(1)))
            if descriptors[1].revents != 0 { return .stopped }
            guard ready > 0 else { return .timedOut }
            return try drain(libpq) ? .notified : .timedOut
        } catch {
            close()  // the next call connects afresh
            throw error
        }
    }

    func close() {
        libpq?.finish()
        libpq = nil
    }

    private func connect() throws -> LibPQConnection {
        let libpq = try LibPQConnection.open(conninfo, notices: notices, context: "LISTEN")
        do {
            try libpq.execute("LISTEN " + libpq.quotedIdentifier(channel), failure: .connectionFailed, context: "LISTEN")
        } catch {
            libpq.finish()
            throw error
        }
        return libpq
    }

    /// Reads what the socket has and frees every queued notification; true if there was one.
    private func drain(_ libpq: LibPQConnection) throws -> Bool {
        guard let pointer = libpq.pointer, PQconsumeInput(pointer) == 1 else {
            throw PostgresError(code: .connectionLost, message: libpq.errorMessage, context: "LISTEN")
        }
        var received = false
        while let notification = PQnotifies(pointer) {
            received = true
            PQfreemem(notification)
        }
        return received
    }
}
