import Locking

/// A token bucket: `rate` tokens per `per`, holding at most `burst` (default `rate`),
/// starting full. Shared by any number of tasks.
///
/// Each `acquire()` reserves the next token under a lock, even one not yet earned, and
/// then sleeps until that token's own time: waiters never wake just to find the bucket
/// still empty, so a crowd of callers costs one lock each, not a thundering herd.
public final class RateLimiter: Sendable {
    private struct Bucket {
        /// Negative when tokens are promised to sleeping callers.
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let clock = ContinuousClock()
    /// Tokens earned per second.
    private let tokensPerSecond: Double
    private let burst: Double
    private let bucket: Mutex<Bucket>

    public init(rate: Int, per interval: Duration, burst: Int? = nil) {
        precondition(rate > 0 && interval > .zero, "a rate limiter needs a positive rate")
        precondition((burst ?? rate) > 0, "a rate limiter needs room for at least one token")
        self.tokensPerSecond = Double(rate) / (interval / .seconds(1))
        self.burst = Double(burst ?? rate)
        self.bucket = Mutex(Bucket(tokens: Double(burst ?? rate), updated: clock.now))
    }

    /// Waits until a token is available and takes it. Throws `CancellationError` if the
    /// task is cancelled while waiting; the reserved token is then given back.
    public func acquire() async throws {
        try Task.checkCancellation()
        let now = clock.now
        let wait = bucket.withLock { bucket -> Duration in
            refill(&bucket, at: now)
            bucket.tokens -= 1
            return bucket.tokens >= 0 ? .zero : .seconds(-bucket.tokens / tokensPerSecond)
        }
        guard wait > .zero else { return }
        do {
            try await Task.sleep(until: now + wait, clock: clock)
        } catch {
            bucket.withLock { $0.tokens += 1 }
            throw error
        }
    }

    /// Takes a token if one is available now, without waiting.
    public func tryAcquire() -> Bool {
        let now = clock.now
        return bucket.withLock { bucket in
            refill(&bucket, at: now)
            guard bucket.tokens >= 1 else { return false }
            bucket.tokens -= 1
            return true
        }
    }

    private func refill(_ bucket: inout Bucket, at now: ContinuousClock.Instant) {
        // Callers read the clock before taking the lock, so `now` may trail `updated`.
        guard now > bucket.updated else { return }
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) / .seconds(1) * tokensPerSecond)
        bucket.updated = now
    }
}

/// What a caller limited by a rate needs: wait for a token, or take one only if there is
/// one now. `RateLimiter` is the in-process bucket; `SharedState` has one shared by every
/// process through Redis.
public protocol TokenBucket: Sendable {
    /// Waits until a token is available and takes it (throws `CancellationError` if cancelled).
    func acquire() async throws
    /// Takes a token if one is available now, without waiting.
    func tryAcquire() async -> Bool
}

extension RateLimiter: TokenBucket {}
