import Synchronization
import Testing
import WarrenCore

@Suite struct RetryPolicyTests {
    struct Failure: Error, Equatable {
        var attempt: Int
        var transient = true
    }

    @Test func constantLinearAndExponentialDelays() {
        let constant = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100), backoff: .constant, jitter: false)
        #expect((1...4).map(constant.delay(forRetry:)) == Array(repeating: .milliseconds(100), count: 4))

        let linear = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100), backoff: .linear, jitter: false)
        #expect((1...4).map(linear.delay(forRetry:)) == [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(400)])

        let doubling = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100), backoff: .exponential(), jitter: false)
        #expect((1...4).map(doubling.delay(forRetry:)) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800)])

        let tripling = RetryPolicy(maxAttempts: 5, initialDelay: .seconds(1), backoff: .exponential(multiplier: 3), jitter: false)
        #expect((1...3).map(tripling.delay(forRetry:)) == [.seconds(1), .seconds(3), .seconds(9)])
    }

    @Test func delaysAreCappedAtMaxDelay() {
        let policy = RetryPolicy(maxAttempts: 100, initialDelay: .seconds(1), backoff: .exponential(), maxDelay: .seconds(10), jitter: false)
        #expect(policy.delay(forRetry: 4) == .seconds(8))
        #expect(policy.delay(forRetry: 5) == .seconds(10))
        #expect(policy.delay(forRetry: 5000) == .seconds(10), "no overflow for absurd retry counts")
    }

    @Test func jitterStaysBetweenHalfAndAllOfTheDelay() {
        let policy = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(100), backoff: .exponential(), maxDelay: .seconds(1), jitter: true)
        for retry in 1...6 {
            let full = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(100), backoff: .exponential(), maxDelay: .seconds(1), jitter: false)
                .delay(forRetry: retry)
            let samples = (0..<200).map { _ in policy.delay(forRetry: retry) }
            #expect(samples.allSatisfy { $0 >= full / 2 && $0 <= full }, "retry \(retry)")
            #expect(Set(samples).count > 1, "jitter varies")
        }
    }

    @Test func retriesThenSucceeds() async throws {
        let policy = RetryPolicy(maxAttempts: 4, initialDelay: .milliseconds(1), backoff: .constant, jitter: false)
        var attempts = 0
        let result = try await policy.run {
            attempts += 1
            if attempts < 3 { throw Failure(attempt: attempts) }
            return "ok"
        }
        #expect(result == "ok")
        #expect(attempts == 3)
    }

    @Test func givesUpAfterMaxAttemptsWithTheLastError() async {
        let policy = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(1), backoff: .linear, jitter: false)
        var attempts = 0
        await #expect(throws: Failure(attempt: 3)) {
            try await policy.run {
                attempts += 1
                throw Failure(attempt: attempts)
            }
        }
        #expect(attempts == 3)
    }

    @Test func permanentErrorsAreNotRetried() async {
        let policy = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(1), jitter: false)
        var attempts = 0
        await #expect(throws: Failure(attempt: 2, transient: false)) {
            try await policy.run(shouldRetry: { ($0 as? Failure)?.transient == true }) {
                attempts += 1
                throw Failure(attempt: attempts, transient: attempts < 2)
            }
        }
        #expect(attempts == 2)
    }

    @Test func retryAfterIsHonouredAndCapped() async throws {
        let policy = RetryPolicy(maxAttempts: 2, initialDelay: .seconds(60), maxDelay: .milliseconds(50), jitter: false)
        let clock = ContinuousClock()
        var attempts = 0
        let elapsed = try await clock.measure {
            _ = try await policy.run(retryAfter: { _ in .seconds(3600) }) {
                attempts += 1
                if attempts == 1 { throw Failure(attempt: 1) }
            }
        }
        #expect(attempts == 2)
        #expect(elapsed >= .milliseconds(50) && elapsed < .seconds(30))

        let prompt = RetryPolicy(maxAttempts: 2, initialDelay: .seconds(60), maxDelay: .seconds(60), jitter: false)
        attempts = 0
        let quick = try await clock.measure {
            _ = try await prompt.run(retryAfter: { _ in .milliseconds(20) }) {
                attempts += 1
                if attempts == 1 { throw Failure(attempt: 1) }
            }
        }
        #expect(quick >= .milliseconds(20) && quick < .seconds(30), "Retry-After replaces the 60 s backoff")
    }

    @Test func cancellationStopsRetrying() async {
        let policy = RetryPolicy(maxAttempts: 100, initialDelay: .seconds(60), backoff: .constant, jitter: false)
        let attempts = Atomic<Int>(0)
        let task = Task {
            try await policy.run {
                attempts.add(1, ordering: .relaxed)
                throw Failure(attempt: 1)
            }
        }
        while attempts.load(ordering: .relaxed) == 0 { await Task.yield() }
        task.cancel()
        let result = await task.result
        #expect(throws: Failure(attempt: 1)) { try result.get() }
        #expect(attempts.load(ordering: .relaxed) == 1)
    }

    @Test func cancellationErrorsAreNeverRetried() async {
        var attempts = 0
        await #expect(throws: CancellationError.self) {
            try await RetryPolicy.default.run {
                attempts += 1
                throw CancellationError()
            }
        }
        #expect(attempts == 1)
    }
}
