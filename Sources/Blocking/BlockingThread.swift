import Dispatch
import Foundation
import Glibc
import Locking
import struct Synchronization.Atomic

/// One OS thread that runs blocking jobs in submission order, so a C client's blocking calls
/// (libpq, hiredis) never occupy Swift's cooperative pool. Each connection owns one; serial
/// order is what lets the connection's C state be touched without a lock.
///
/// It is also a `TaskExecutor`: a task that prefers it (`withTaskExecutorPreference`, as
/// `PostgresPool.withConnection` does for the connection it lends) runs on this thread,
/// and its `run` calls then execute in place instead of hopping to the thread and back —
/// a transaction of four statements costs no thread switch per statement. Jobs still run
/// one at a time: the task's code and its calls are each a job of this one thread.
public final class BlockingThread: TaskExecutor, Sendable {
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

    /// Runs `job` on the thread and returns its result to the awaiting task (at once, in
    /// place, when that task already runs on the thread).
    public func run<T: Sendable>(_ job: @escaping @Sendable () throws -> T) async throws -> T {
        if queue.isCurrentThread { return try job() }
        return try await withCheckedThrowingContinuation { continuation in
            queue.submit { continuation.resume(with: Result(catching: job)) }
        }
    }

    /// Queues `job` without waiting: for cleanup from `deinit`.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        queue.submit(job)
    }

    /// Runs a slice of a task that prefers this thread as its executor.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.submit { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}

private final class JobQueue: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// The thread running the jobs (`pthread_t`), set before its first job.
    private let owner = Atomic<UInt>(0)
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

    var isCurrentThread: Bool { owner.load(ordering: .relaxed) == pthread_self() }

    func runUntilStopped() {
        owner.store(pthread_self(), ordering: .relaxed)
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
