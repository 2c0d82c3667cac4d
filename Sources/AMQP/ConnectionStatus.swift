import Locking
import struct Synchronization.Atomic

/// What a connection is doing, for callers and logs.
public enum AMQPConnectionState: Sendable, Equatable {
    case connecting
    case connected(endpoint: String)
    /// The broker raised a resource alarm: publishes wait (until their timeout) until it clears.
    case blocked(reason: String)
    case reconnecting(attempt: Int, lastError: AMQPError)
    case closed
}

/// The current state plus everyone listening for changes.
final class ConnectionStatus: Sendable {
    private struct Inner {
        var state: AMQPConnectionState = .connecting
        var listeners: [Int: AsyncStream<AMQPConnectionState>.Continuation] = [:]
        var nextListener = 0
        /// Since when the broker blocks publishing, while it does.
        var blockedSince: ContinuousClock.Instant?
    }

    private let inner = Mutex(Inner())
    private let metrics: AMQPMetrics
    /// Publishes taken by the I/O thread and held back (blocked by the broker, or not
    /// connected), as of its last turn of the loop.
    let heldPublishes = Atomic<Int>(0)

    init(metrics: AMQPMetrics) {
        self.metrics = metrics
    }

    var current: AMQPConnectionState { inner.withLock { $0.state } }

    func set(_ state: AMQPConnectionState) {
        let listeners = inner.withLock { inner -> [AsyncStream<AMQPConnectionState>.Continuation] in
            guard inner.state != state else { return [] }
            if case .reconnecting = inner.state, case .connected = state { metrics.reconnects.increment() }
            inner.state = state
            switch state {
            case .blocked:
                if inner.blockedSince == nil { inner.blockedSince = .now }
            default:
                if let since = inner.blockedSince {
                    metrics.unblocked(after: ContinuousClock.now - since)
                    inner.blockedSince = nil
                }
            }
            metrics.state(state)
            return Array(inner.listeners.values)
        }
        for listener in listeners {
            listener.yield(state)
            if state == .closed { listener.finish() }
        }
    }

    /// Yields the current state, then every change, and ends when the connection closes.
    func updates() -> AsyncStream<AMQPConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: AMQPConnectionState.self, bufferingPolicy: .bufferingNewest(16))
        let current = inner.withLock { inner -> AMQPConnectionState in
            let id = inner.nextListener
            inner.nextListener += 1
            inner.listeners[id] = continuation
            continuation.onTermination = { [weak self] _ in self?.inner.withLock { _ = $0.listeners.removeValue(forKey: id) } }
            return inner.state
        }
        continuation.yield(current)
        if current == .closed { continuation.finish() }
        return stream
    }
}
