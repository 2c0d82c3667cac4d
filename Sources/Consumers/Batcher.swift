import Locking

/// Hands a consumer's decoded deliveries to its processing loop in batches. `next` returns
/// whatever is buffered (up to `max`) as soon as anything is: an idle consumer handles a
/// single event at once, and while a batch is in its transaction the next one gathers,
/// so batches grow with the load instead of waiting on a timer. A positive `wait` (the
/// topology's `batch_wait`) makes `next` linger that long for a fuller batch.
///
/// `stop()` ends batching at once (graceful shutdown): deliveries not yet handed out stay
/// unacked and return to the queue.
final class Batcher<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var ended = false
        var failure: (any Error)?
        var stopped = false
        var waiter: (threshold: Int, continuation: CheckedContinuation<Void, Never>)?
    }

    private let state = Mutex(State())

    /// A `next` call is parked, waiting for elements (for tests).
    var isWaiting: Bool { state.withLock { $0.waiter != nil } }

    func push(_ element: Element) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.buffer.append(element)
            guard let waiter = state.waiter, state.buffer.count >= waiter.threshold else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// The source ended: normally (nil) or with an error that `next` rethrows.
    func finish(_ failure: (any Error)?) {
        wake { $0.ended = true; $0.failure = failure }
    }

    func stop() {
        wake { $0.stopped = true }
    }

    /// The next batch; nil once stopped or once the consumer ended and all was handed out.
    func next(max: Int, wait: Duration = .zero) async throws -> [Element]? {
        await waitFor(threshold: 1, deadline: nil)
        if max > 1, wait > .zero { await waitFor(threshold: max, deadline: .now + wait) }
        return try state.withLock { state throws -> [Element]? in
            if state.stopped { return nil }
            if state.buffer.isEmpty {
                if let failure = state.failure { throw failure }
                return nil
            }
            let batch = Array(state.buffer.prefix(max))
            state.buffer.removeFirst(batch.count)
            return batch
        }
    }

    private func wake(_ change: (inout State) -> Void) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            change(&state)
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume()
    }

    /// Returns when `threshold` deliveries are buffered, the batcher stopped or ended, or
    /// `deadline` passed.
    private func waitFor(threshold: Int, deadline: ContinuousClock.Instant?) async {
        // Usually the prefetched deliveries are already there: no tasks, no timer.
        if state.withLock({ $0.buffer.count >= threshold || $0.stopped || $0.ended }) { return }
        // Set by the timer before it wakes the waiter, and checked under the same lock as
        // registration, so a timer that fires before the waiter registers is not lost.
        let expired = Flag()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Bool in
                        if state.buffer.count >= threshold || state.stopped || state.ended || expired.isSet { return true }
                        state.waiter = (threshold, continuation)
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
            if let deadline {
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    expired.set()
                    self.wake { _ in }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
