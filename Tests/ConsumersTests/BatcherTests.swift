@testable import Consumers
import Testing

/// The batching that sets a consumer's latency: no timer when idle, batches that grow
/// only while work queues up behind a transaction.
@Suite struct BatcherTests {
    @Test func anIdleConsumerGetsASingleEventAtOnce() async throws {
        let batcher = Batcher<Int>()
        batcher.push(1)
        // With batch_wait zero nothing waits for the batch to fill: a linger of even a
        // millisecond per event would show as latency under a light load.
        let started = ContinuousClock.now
        #expect(try await batcher.next(max: 100) == [1])
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func whatQueuedUpWhileBusyIsTheNextBatchUpToTheMaximum() async throws {
        let batcher = Batcher<Int>()
        for value in 0..<250 { batcher.push(value) }
        #expect(try await batcher.next(max: 100) == Array(0..<100))
        #expect(try await batcher.next(max: 100) == Array(100..<200))
        #expect(try await batcher.next(max: 100) == Array(200..<250))
    }

    @Test func aWaitingLoopWakesForTheFirstEvent() async throws {
        let batcher = Batcher<Int>()
        async let batch = batcher.next(max: 10)
        try await waitUntil { batcher.isWaiting }
        batcher.push(7)
        #expect(try await batch == [7])
    }

    @Test func aPositiveBatchWaitLingersForAFullerBatch() async throws {
        let batcher = Batcher<Int>()
        batcher.push(1)
        async let batch = batcher.next(max: 3, wait: .seconds(60))
        try await waitUntil { batcher.isWaiting }
        batcher.push(2)
        batcher.push(3)
        #expect(try await batch == [1, 2, 3], "handed out once full, long before the linger ran out")
    }

    @Test func aPositiveBatchWaitHandsOutWhatItHasWhenTheWaitRunsOut() async throws {
        let batcher = Batcher<Int>()
        batcher.push(1)
        #expect(try await batcher.next(max: 3, wait: .milliseconds(20)) == [1])
    }

    @Test func stoppingEndsBatchingAndLeavesTheRestUnhandedOut() async throws {
        let batcher = Batcher<Int>()
        async let batch = batcher.next(max: 10)
        try await waitUntil { batcher.isWaiting }
        batcher.stop()
        #expect(try await batch == nil)
        batcher.push(1)
        #expect(try await batcher.next(max: 10) == nil)
    }

    @Test func theSourcesErrorComesAfterWhatWasBuffered() async throws {
        struct Lost: Error {}
        let batcher = Batcher<Int>()
        batcher.push(1)
        batcher.finish(Lost())
        #expect(try await batcher.next(max: 10) == [1])
        await #expect(throws: Lost.self) { try await batcher.next(max: 10) }
    }

    @Test func aSourceThatEndsCleanlyEndsTheBatches() async throws {
        let batcher = Batcher<Int>()
        batcher.push(1)
        batcher.finish(nil)
        #expect(try await batcher.next(max: 10) == [1])
        #expect(try await batcher.next(max: 10) == nil)
    }
}

/// Polls `condition` (no fixed sleeps in tests).
func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw CancellationError() }
        try await Task.sleep(for: .milliseconds(1))
    }
}
