import Locking

/// The broker's answer to one publish made with `AMQPChannel.send`: settled once, by the
/// confirm or by the failure `publish` would have thrown. Any number of tasks may await it,
/// before or after it settles.
public final class PublishConfirmation: Sendable {
    private enum State {
        case pending([UnsafeContinuation<Result<Void, AMQPError>, Never>])
        case settled(Result<Void, AMQPError>)
    }

    private let state = Mutex(State.pending([]))

    init() {}

    /// Whether the broker answered yet (without waiting).
    public var isSettled: Bool { settledResult != nil }

    /// Returns once the broker confirmed the message; throws what `publish` would throw.
    public func confirmed() async throws {
        if let result = settledResult { return try result.get() }
        let result: Result<Void, AMQPError> = await withUnsafeContinuation { continuation in
            let settled = state.withLock { state -> Result<Void, AMQPError>? in
                switch state {
                case .settled(let result):
                    return result
                case .pending(var waiters):
                    waiters.append(continuation)
                    state = .pending(waiters)
                    return nil
                }
            }
            if let settled { continuation.resume(returning: settled) }
        }
        try result.get()
    }

    private var settledResult: Result<Void, AMQPError>? {
        state.withLock { if case .settled(let result) = $0 { result } else { nil } }
    }

    /// Called once by the I/O thread.
    @Sendable func settle(_ result: Result<Void, AMQPError>) {
        let waiters = state.withLock { state -> [UnsafeContinuation<Result<Void, AMQPError>, Never>] in
            guard case .pending(let waiters) = state else { return [] }
            state = .settled(result)
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }
}
