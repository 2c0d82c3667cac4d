/// Why a provider call failed, in the terms a consumer needs: retry later or never.
///
/// `message` is the provider's own explanation (SendGrid's `errors[].message`, Stripe's
/// `error.message`) or ours for network failures. It never holds the API key, and the
/// request body (addresses, amounts) is never copied into it.
public struct ProviderError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// May work later: 429, 5xx, timeout, connection lost.
        case transient
        /// Will never work as sent: the provider rejected the request (4xx).
        case permanent
        /// Warren is set up wrongly: a base URL that is not HTTPS, a missing key.
        case configuration
        /// The request went out and no answer came back (a timeout, a dropped connection)
        /// from a call that is not idempotent: the provider may have acted on it, so
        /// sending it again is not safe (code `outcome-unknown`).
        case outcomeUnknown
    }

    public var kind: Kind
    /// `sendgrid`, `stripe`, …
    public var provider: String
    /// The HTTP status, when the provider answered.
    public var status: Int?
    /// A short machine-readable reason: Stripe's `type`/`code` (`card_error/card_declined`),
    /// or `timeout`, `connection`, `http_429`, `http_500`.
    public var code: String
    public var message: String
    /// How long the provider asked us to wait (429's reset or Retry-After).
    public var retryAfter: Duration?

    public init(_ kind: Kind, provider: String, status: Int? = nil, code: String, _ message: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.provider = provider
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String {
        let status = self.status.map { " \($0)" } ?? ""
        return "\(provider)\(status) \(code): \(message)"
    }
}
