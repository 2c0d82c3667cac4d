import Logging
import ServiceLifecycle
import Locking

/// A connection to RabbitMQ that stays up: it reconnects with backoff across the
/// configured endpoints, re-opens its channels, re-declares what was declared through it
/// and resumes consumers. All work runs on the connection's own I/O thread; every method
/// here only queues work and awaits it, so nothing blocks Swift's cooperative pool.
public final class AMQPConnection: Sendable {
    let loop: IOLoop
    private let nextChannelID = Mutex<UInt16>(IOLoop.controlChannel + 1)

    /// A connection that does nothing until `run()` (as a `Service` in a `ServiceGroup`)
    /// connects it. Channels opened before that wait for the first connection.
    public init(_ configuration: AMQPConfiguration, logger: Logger = Logger(label: "warren.amqp")) {
        loop = IOLoop(configuration: configuration, logger: logger)
    }

    /// Connects to the first endpoint that accepts, or throws the last endpoint's error.
    /// The caller must `close()` it: nothing else stops its I/O thread (prefer
    /// ``withConnection(_:logger:_:)`` for one-shot work, and `run()` as a `Service` in
    /// long-running processes).
    public static func connect(
        _ configuration: AMQPConfiguration,
        logger: Logger = Logger(label: "warren.amqp")
    ) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration, logger: logger)
        try await connection.loop.start()
        return connection
    }

    /// Connects, runs `body` with the connection, and closes it however `body` ends: for
    /// one-shot work (a CLI command).
    public static func withConnection<T>(
        _ configuration: AMQPConfiguration,
        logger: Logger = Logger(label: "warren.amqp"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AMQPConnection) async throws -> T
    ) async throws -> T {
        let connection = try await connect(configuration, logger: logger)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    public var configuration: AMQPConfiguration { loop.configuration }

    /// Connected, blocked by a resource alarm, reconnecting, or closed.
    public var state: AMQPConnectionState { loop.status.current }
    /// Publishes waiting inside the connection for it to be connected and unblocked again
    /// (each fails by its own timeout if that takes too long).
    public var heldPublishCount: Int { loop.status.heldPublishes.load(ordering: .relaxed) }

    /// The current state, then every change until the connection is closed.
    public func stateUpdates() -> AsyncStream<AMQPConnectionState> { loop.status.updates() }

    /// Opens a channel. With `confirms` (the default) every publish on it waits for the
    /// broker's confirm; without, a publish is done once written to the socket.
    public func openChannel(confirms: Bool = true) async throws -> AMQPChannel {
        let id = try nextChannelID.withLock { next throws(AMQPError) -> UInt16 in
            guard next < 2047 else { throw AMQPError(.library, "no channel ids left on this connection") }
            defer { next += 1 }
            return next
        }
        let handle = ChannelHandle()
        let error: AMQPError? = await withCheckedContinuation { continuation in
            loop.submit(.registerChannel(id: id, confirms: confirms, handle: handle) { continuation.resume(returning: $0) })
        }
        if let error { throw error }
        return AMQPChannel(id: id, connection: self, handle: handle)
    }

    /// Closes cleanly: work still queued or unconfirmed fails with `.closed`, consumers end.
    public func close() async {
        await withCheckedContinuation { continuation in
            loop.submit(.close { continuation.resume() })
        }
    }
}

extension AMQPConnection: Service {
    /// Starts the I/O thread and connects (throwing the last endpoint's error if none
    /// accepts), keeps the connection up until graceful shutdown or cancellation, then
    /// closes it. In a `ServiceGroup`, list it before the services that use it: the group
    /// stops services in reverse order, so they finish their work before it closes.
    public func run() async throws {
        try await loop.start()
        try? await gracefulShutdown()
        await close()
    }
}
