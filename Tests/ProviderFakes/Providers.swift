import Adapters
import Logging
import WarrenCore

/// Warren's adapters pointed at the fakes, with short timeouts and a generous rate, for
/// the adapter tests and the consumer tests that run the providers end to end.
extension FakeSendGrid {
    public func provider(
        key: String? = nil, timeout: Duration = .seconds(2), retry: RetryPolicy = ProviderEndpoint.defaultRetry,
        limiter: RateLimiter = RateLimiter(rate: 1000, per: .seconds(1))
    ) throws -> SendGridProvider {
        let endpoint = try ProviderEndpoint(
            provider: "sendgrid", baseURL: baseURL, apiKey: APIKey(key ?? apiKey), timeout: timeout, retry: retry, rateLimiter: limiter)
        return SendGridProvider(endpoint: endpoint, logger: fakesLogger)
    }
}

extension FakeStripe {
    public func provider(key: String? = nil, timeout: Duration = .seconds(2), retry: RetryPolicy = ProviderEndpoint.defaultRetry) throws
        -> StripeProvider
    {
        let endpoint = try ProviderEndpoint(
            provider: "stripe", baseURL: baseURL, apiKey: APIKey(key ?? apiKey), timeout: timeout, retry: retry,
            rateLimiter: RateLimiter(rate: 1000, per: .seconds(1)))
        return StripeProvider(endpoint: endpoint, logger: fakesLogger)
    }
}

/// The adapters log what they do; the tests assert on answers, not on log lines.
public let fakesLogger: Logger = {
    var logger = Logger(label: "warren.tests.providers")
    logger.logLevel = .critical
    return logger
}()
