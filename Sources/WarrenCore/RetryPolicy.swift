import Foundation

/// How often and how patiently to retry a failing operation: a publish whose confirm did
/// not come, an HTTP call to a provider that answered 503 or 429.
public struct RetryPolicy: Sendable, Hashable {
    public enum Backoff: Sendable, Hashable {
        /// Every retry waits `initialDelay`.
        case constant
        /// Retry n waits `n × initialDelay`.
        case linear
        /// Retry n waits `initialDelay × multiplier^(n-1)`.
        case exponential(multiplier: Double = 2)
    }

    /// Attempts in total, the first included; 1 means no retry.
    public var maxAttempts: Int
    public var initialDelay: Duration
    public var backoff: Backoff
    /// No wait is longer, whatever the backoff or a server's Retry-After says.
    public var maxDelay: Duration
    /// Wait a random 50–100 % of the computed delay, so that clients failing together do
    /// not retry together.
    public var jitter: Bool

    public init(
        maxAttempts: Int, initialDelay: Duration, backoff: Backoff = .exponential(), maxDelay: Duration = .seconds(30),
        jitter: Bool = true
    ) {
        precondition(maxAttempts >= 1, "a retry policy needs at least one attempt")
        precondition(initialDelay >= .zero && maxDelay >= .zero, "retry delays cannot be negative")
        if case .exponential(let multiplier) = backoff { precondition(multiplier > 0, "a backoff multiplier must be positive") }
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.backoff = backoff
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// 5 attempts, 200 ms doubling up to 30 s, with jitter.
    public static let `default` = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(200))
    /// One attempt.
    public static let never = RetryPolicy(maxAttempts: 1, initialDelay: .zero, backoff: .constant, maxDelay: .zero, jitter: false)

    /// The wait before retry `n` (1 is the first retry, i.e. the second attempt).
    public func delay(forRetry n: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(forRetry: n, using: &generator)
    }

    /// As `delay(forRetry:)`, drawing jitter from `generator`.
    public func delay(forRetry n: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let retry = Double(max(1, n))
        let factor =
            switch backoff {
            case .constant: 1.0
            case .linear: retry
            case .exponential(let multiplier): pow(multiplier, retry - 1)
            }
        // Compared in seconds as Doubles first, so that a large n saturates at maxDelay
        // instead of overflowing Duration.
        var delay = initialDelay / .seconds(1) * factor < maxDelay / .seconds(1) ? initialDelay * factor : maxDelay
        if jitter { delay = delay * Double.random(in: 0.5...1, using: &generator) }
        return delay
    }

    /// Runs `operation` up to `maxAttempts` times, waiting between attempts.
    ///
    /// An error is retried when `shouldRetry` says so and attempts remain; the wait is
    /// `retryAfter(error)` when it gives one (a server's Retry-After, capped at `maxDelay`),
    /// otherwise `delay(forRetry:)`. Cancellation stops the retries: a `CancellationError`
    /// from the operation is rethrown at once, and cancellation during a wait rethrows the
    /// operation's last error. When attempts run out, the last error is rethrown.
    public func run<T>(
        isolation: isolated (any Actor)? = #isolation,
        shouldRetry: (any Error) -> Bool = { _ in true },
        retryAfter: (any Error) -> Duration? = { _ in nil },
        _ operation: () async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await operation()
            } catch let failure {
                guard attempt < maxAttempts, !(failure is CancellationError), !Task.isCancelled, shouldRetry(failure) else {
                    throw failure
                }
                let wait = retryAfter(failure).map { min(max($0, .zero), maxDelay) } ?? delay(forRetry: attempt)
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    // Only cancellation interrupts a sleep; the operation's failure is the news.
                    throw failure
                }
                attempt += 1
            }
        }
    }
}
