import Dispatch
import Foundation
import Locking

/// One OS thread that runs blocking jobs in submission order, so a C client's blocking calls
/// (libpq, hiredis) never occupy Swift's cooperative pool. Each connection owns one; serial
/// order is what lets the connection's C state be touched without a lock.
public final class BlockingThread: Sendable {
    private let queue = JobQueue()

    public init(name: String) {
        let queue = self.queue
        let thread = Thread { queue.runUntilStopped() }
        thread.name = name
        thread.start()
    }

    deinit {
        queue.stop()
    }

    /// Runs `job` on the thread and returns its result to the awaiting task.
    public func run<T: Sendable>(_ job: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.submit { continuation.resume(with: Result(catching: job)) }
        }
    }

    /// Queues `job` without waiting: for cleanup from `deinit`.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        queue.submit(job)
    }
}

private final class JobQueue: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// Counts queued jobs plus the stop request, so the thread sleeps instead of spinning.
    private let available = DispatchSemaphore(value: 0)

    public func submit(_ job: @escaping @Sendable () -> Void) {
        state.withLock { $0.jobs.append(job) }
        available.signal()
    }

    /// Jobs queued before `stop()` still run: the owner's final cleanup (`PQfinish`) is one.
    func stop() {
        state.withLock { $0.stopped = true }
        available.signal()
    }

    func runUntilStopped() {
        while true {
            available.wait()
            let next: (@Sendable () -> Void)? = state.withLock { state in
                state.jobs.isEmpty ? nil : state.jobs.removeFirst()
            }
            if let next {
                next()
            } else if state.withLock({ $0.stopped }) {
                return
            }
        }
    }
}
