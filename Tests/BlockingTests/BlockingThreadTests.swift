import Blocking
import Glibc
import Synchronization
import Testing

/// `BlockingThread` as a task executor: a task that prefers it runs on the thread, and its
/// jobs execute in place there; other tasks' jobs still hop to it and run one at a time.
@Suite struct BlockingThreadTests {
    @Test func aTaskThatPrefersTheThreadRunsItsJobsInPlace() async throws {
        let thread = BlockingThread(name: "test.blocking")
        let jobThread = try await thread.run { pthread_self() }
        let order = Order()
        try await withTaskExecutorPreference(thread) {
            #expect(pthread_self() == jobThread, "the task's own code runs on the thread")
            // In place, not queued: it runs before a job queued ahead of it.
            thread.submit { order.append("queued earlier") }
            let inPlace = try await thread.run { order.append("run in place"); return pthread_self() }
            #expect(inPlace == jobThread)
            #expect(order.names == ["run in place"])
        }
        #expect(pthread_self() != jobThread, "back on the cooperative pool afterwards")
    }

    @Test func jobsOfOtherTasksStillRunOnTheThreadOneAtATime() async throws {
        let thread = BlockingThread(name: "test.blocking")
        let jobThread = try await thread.run { pthread_self() }
        let running = Running()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let body: @Sendable () throws -> Void = {
                        #expect(pthread_self() == jobThread)
                        #expect(running.jobs.add(1, ordering: .relaxed).newValue == 1, "two jobs at once")
                        usleep(2_000)
                        running.jobs.subtract(1, ordering: .relaxed)
                    }
                    if index.isMultiple(of: 2) {
                        try await withTaskExecutorPreference(thread) { try await thread.run(body) }
                    } else {
                        try await thread.run(body)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

private final class Running: Sendable {
    let jobs = Atomic<Int>(0)
}

private final class Order: Sendable {
    private let list = Mutex<[String]>([])
    func append(_ name: String) { list.withLock { $0.append(name) } }
    var names: [String] { list.withLock { $0 } }
}
