import Foundation
import WarrenCore

/// Where and how to reach one HTTP provider: base URL, API key, per-request timeout,
/// the short in-process retry and the token bucket shared by every call to it (the
/// process' own, or one shared by every process through Redis).
///
/// Longer waits than `retry` allows (a provider down for minutes, a 429 resetting in a
/// minute) are not waited out here: the call fails transiently and the consumer's delay
/// tiers take over.
public struct ProviderEndpoint: Sendable {
    public let baseURL: URL
    public let apiKey: APIKey
    public var timeout: Duration
    public var retry: RetryPolicy
    public let rateLimiter: any TokenBucket

    /// Throws a `.configuration` error for a base URL that is not HTTPS, unless it points
    /// at this machine (127.0.0.1, localhost, [::1]), where tests run their fakes.
    public init(
        provider: String, baseURL: String, apiKey: APIKey, timeout: Duration = .seconds(10),
        retry: RetryPolicy = ProviderEndpoint.defaultRetry, rateLimiter: any TokenBucket
    ) throws(ProviderError) {
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ProviderError(.configuration, provider: provider, code: "base_url", "base URL '\(baseURL)' is not an absolute URL")
        }
        let loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased())
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw ProviderError(
                .configuration, provider: provider, code: "base_url",
                "base URL '\(baseURL)' must use https (http is allowed only for 127.0.0.1, localhost and [::1])")
        }
        guard !apiKey.value.isEmpty else {
            throw ProviderError(.configuration, provider: provider, code: "api_key", "the API key is empty")
        }
        self.baseURL = url
        self.apiKey = apiKey
        self.timeout = timeout
        self.retry = retry
        self.rateLimiter = rateLimiter
    }

    /// 3 attempts, 250 ms doubling, at most 2 s between them.
    public static let defaultRetry = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(250), maxDelay: .seconds(2))

    /// `baseURL` + `path` (`/v3/mail/send`), keeping a path prefix the base URL may have.
    func url(_ path: String) -> String {
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }
}

/// A provider's secret key. Its description is redacted, so interpolating it into a log
/// line or an error by mistake leaks nothing.
public struct APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
