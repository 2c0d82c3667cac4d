import Testing
import WarrenCore

@Suite struct RateLimiterTests {
    @Test func aBurstPassesAtOnce() async throws {
        let limiter = RateLimiter(rate: 10, per: .seconds(60))
        let elapsed = try await ContinuousClock().measure {
            for _ in 0..<10 { try await limiter.acquire() }
        }
        #expect(elapsed < .seconds(5))
        #expect(limiter.tryAcquire() == false, "the eleventh token is a minute away")
    }

    @Test func sustainedRateIsLimitedAcrossTasks() async throws {
        let limiter = RateLimiter(rate: 10, per: .milliseconds(100))
        let elapsed = try await ContinuousClock().measure {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 { group.addTask { try await limiter.acquire() } }
                try await group.waitForAll()
            }
        }
        // 10 from the full bucket, then 10 more at one per 10 ms.
        #expect(elapsed >= .milliseconds(90))
    }

    @Test func burstCanBeSmallerThanTheRate() async throws {
        let limiter = RateLimiter(rate: 100, per: .seconds(1), burst: 2)
        #expect(limiter.tryAcquire())
        #expect(limiter.tryAcquire())
        #expect(limiter.tryAcquire() == false)
        let elapsed = try await ContinuousClock().measure { try await limiter.acquire() }
        #expect(elapsed >= .milliseconds(5))
    }

    @Test func cancelledWaitersGiveTheirTokenBack() async throws {
        let limiter = RateLimiter(rate: 1, per: .seconds(3600))
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limiter.tryAcquire() == false, "cancelling does not mint a token")
    }
}
