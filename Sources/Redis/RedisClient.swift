import Logging
import Metrics
import ServiceLifecycle
import Locking

/// Warren's Redis client: a pool of `configuration.connections` hiredis connections, each
/// on its own OS thread (blocking calls never run on Swift's cooperative pool), with
/// connect and reply timeouts and reconnection on the next call.
///
/// Callers treat Redis as optional: during an outage commands fail at once with
/// ``RedisError/Kind-swift.enum/unavailable`` (one probe per `probeInterval` goes
/// through), so they fall back without waiting. An outage is logged once when it begins
/// (`redis.unavailable`) and once when it ends (`redis.recovered`), and shown by the
/// gauge `warren_redis_up`.
///
/// As a `Service` it probes with `PING` during an outage (so recovery is seen without
/// traffic) and closes its connections on graceful shutdown.
public final class RedisClient: Service, Sendable, CustomStringConvertible {
    public let configuration: RedisConfiguration
    private let connections: [RedisConnection]
    private let availability: Mutex<RedisAvailability>
    private let logger: Logger
    private let upGauge = Gauge(label: "warren_redis_up")
    private let outages = Counter(label: "warren_redis_outages_total")

    public var description: String { "RedisClient(\(configuration))" }

    public init(configuration: RedisConfiguration, logger: Logger) {
        precondition(configuration.connections > 0, "a Redis pool needs at least one connection")
        self.configuration = configuration
        self.connections = (0..<configuration.connections).map { RedisConnection(configuration: configuration, name: "warren.redis.\($0)") }
        self.availability = Mutex(RedisAvailability(probeInterval: configuration.probeInterval))
        var logger = logger
        logger[metadataKey: "redis.server"] = "\(configuration.host):\(configuration.port)"
        self.logger = logger
        upGauge.record(1)
    }

    /// False during an outage (between a failed command and the next success).
    public var isAvailable: Bool { availability.withLock { $0.isUp } }

    /// Sends one command: `try await redis.send("SET", "k", "v", "EX", "60")`.
    @discardableResult
    public func send(_ arguments: String...) async throws(RedisError) -> RedisValue {
        try await send(arguments.map { Array($0.utf8) })
    }

    @discardableResult
    public func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisValue {
        let clock = ContinuousClock()
        guard availability.withLock({ $0.maySend(at: clock.now) }) else {
            throw RedisError(.unavailable, "Redis at \(configuration.host):\(configuration.port) is unreachable; the next try is within \(configuration.probeInterval)")
        }
        let connection = connections.min { $0.pending.load(ordering: .relaxed) < $1.pending.load(ordering: .relaxed) }!
        let sentAt = clock.now
        do {
            let value = try await connection.send(arguments)
            record(availability.withLock { $0.succeeded(at: clock.now, sentAt: sentAt) }, error: nil)
            return value
        } catch let error as RedisError {
            if error.isOutage {
                record(availability.withLock { $0.failed(at: clock.now, sentAt: sentAt) }, error: error)
            } else {
                // The server answered: it is up, whatever it said.
                record(availability.withLock { $0.succeeded(at: clock.now, sentAt: sentAt) }, error: nil)
            }
            throw error
        } catch {
            throw RedisError(.connectionLost, "\(error)")
        }
    }

    /// Runs `script` by its SHA-1, loading it with `EVAL` if the server lacks it.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisValue {
        let tail = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments.map { Array($0.utf8) }
        do {
            return try await send([Array("EVALSHA".utf8), Array(script.sha1.utf8)] + tail)
        } catch where error.kind == .server && error.message.contains("NOSCRIPT") {
            return try await send([Array("EVAL".utf8), Array(script.source.utf8)] + tail)
        }
    }

    private func record(_ transition: RedisAvailability.Transition?, error: RedisError?) {
        switch transition {
        case .wentDown:
            upGauge.record(0)
            outages.increment()
            logger.warning("redis.unavailable", metadata: ["error": "\(error.map { "\($0)" } ?? "?")", "redis.fallback": "per-process limits and PostgreSQL"])
        case .recovered(let outage):
            upGauge.record(1)
            logger.info("redis.recovered", metadata: ["redis.outage_seconds": "\(outage / .seconds(1))"])
        case nil:
            break
        }
    }

    public func run() async throws {
        // Probe during outages until shutdown. Services listed after this one in a
        // ServiceGroup stop first, so they can use Redis while they drain.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.configuration.probeInterval)
                if !self.isAvailable { _ = try? await self.send("PING") }
            }
        }
        await close()
    }

    public func close() async {
        for connection in connections { await connection.close() }
    }
}
