import Foundation

/// What one attempt to deliver a webhook came to.
public enum AttemptResult: Sendable, Equatable {
    /// The endpoint answered with this status (and `Retry-After`, if it sent one).
    case response(status: Int, retryAfter: Duration?)
    /// No answer within the timeout.
    case timedOut
    /// No answer at all: refused, reset, TLS, DNS, or the guard refused the address.
    case failed(String)
}

/// What to do with a delivery after an attempt: decided here, without I/O.
public enum DeliveryDecision: Sendable, Equatable {
    case delivered
    /// Try again after this long.
    case retry(after: Duration)
    /// No more automatic attempts (the last one failed, or the answer says retrying cannot help).
    case failed
    /// 410 Gone: the subscriber asked to be removed; the subscription is disabled.
    case gone
}

/// The retry schedule and classification of outbound webhooks.
///
/// 2xx is delivered; 410 disables the subscription; 408, 429, 5xx, timeouts and
/// connection failures are retried after `schedule[n-1]` (or the `Retry-After` asked for,
/// when longer, up to `maximumRetryAfter`), and after the last entry the delivery is
/// failed; any other answer (3xx: redirects are never followed; 4xx) fails it at once.
/// A subscription whose deliveries fail without a success for `disableAfter` is disabled.
public struct DeliveryPolicy: Sendable, Equatable {
    /// The wait before retry 1, 2, …: one attempt plus one per entry in all.
    public var schedule: [Duration]
    public var timeout: Duration
    public var disableAfter: Duration
    public var maximumRetryAfter: Duration

    public static let defaultSchedule: [Duration] = [
        .seconds(5), .seconds(300), .seconds(1_800), .seconds(7_200), .seconds(18_000), .seconds(36_000), .seconds(36_000),
    ]

    public init(
        schedule: [Duration] = DeliveryPolicy.defaultSchedule, timeout: Duration = .seconds(15), disableAfter: Duration = .seconds(5 * 86_400),
        maximumRetryAfter: Duration = .seconds(86_400)
    ) {
        self.schedule = schedule
        self.timeout = timeout
        self.disableAfter = disableAfter
        self.maximumRetryAfter = maximumRetryAfter
    }

    public var maximumAttempts: Int { schedule.count + 1 }

    /// `attempt` counts from 1 and includes the one that produced `result`.
    public func decide(_ result: AttemptResult, attempt: Int) -> DeliveryDecision {
        let retryAfter: Duration?
        switch result {
        case .response(let status, _) where (200...299).contains(status): return .delivered
        case .response(410, _): return .gone
        case .response(let status, let asked) where status == 408 || status == 429 || (500...599).contains(status): retryAfter = asked
        case .response: return .failed
        case .timedOut, .failed: retryAfter = nil
        }
        guard attempt >= 1, attempt <= schedule.count else { return .failed }
        let scheduled = schedule[attempt - 1]
        guard let retryAfter, retryAfter > scheduled else { return .retry(after: scheduled) }
        return .retry(after: min(retryAfter, maximumRetryAfter))
    }

    /// `Retry-After` as seconds or an HTTP date; nil when absent or unreadable.
    public static func retryAfter(_ value: String?, now: Date = Date()) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int64(value) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int64(date.timeIntervalSince(now).rounded(.up))))
    }
}
