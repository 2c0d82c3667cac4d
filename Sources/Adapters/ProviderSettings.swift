import AsyncHTTPClient
import Foundation
import Logging
import WarrenCore

/// The providers as configured by the environment:
///
/// - `SENDGRID_API_KEY`, `WARREN_SENDGRID_URL` (default `https://api.sendgrid.com`),
///   `WARREN_SENDGRID_RATE` (requests per second, default 10);
/// - `STRIPE_SECRET_KEY`, `WARREN_STRIPE_URL` (default `https://api.stripe.com`),
///   `WARREN_STRIPE_RATE` (requests per second, default 25);
/// - `WARREN_PROVIDER_TIMEOUT` (seconds per request, default 10).
public struct ProviderSettings: Sendable {
    public var sendGridURL: String
    public var sendGridKey: APIKey?
    public var sendGridRate: Int
    public var stripeURL: String
    public var stripeKey: APIKey?
    public var stripeRate: Int
    public var timeout: Duration
    /// Makes each provider's bucket from its name (`sendgrid`, `stripe`) and rate per second:
    /// the process' own by default; `warren run`/`consume` share them through Redis when set.
    public var bucket: @Sendable (_ provider: String, _ perSecond: Int) -> any TokenBucket = { _, rate in
        RateLimiter(rate: rate, per: .seconds(1))
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        func nonEmpty(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        sendGridURL = nonEmpty("WARREN_SENDGRID_URL") ?? "https://api.sendgrid.com"
        sendGridKey = nonEmpty("SENDGRID_API_KEY").map(APIKey.init)
        sendGridRate = nonEmpty("WARREN_SENDGRID_RATE").flatMap(Int.init) ?? 10
        stripeURL = nonEmpty("WARREN_STRIPE_URL") ?? "https://api.stripe.com"
        stripeKey = nonEmpty("STRIPE_SECRET_KEY").map(APIKey.init)
        stripeRate = nonEmpty("WARREN_STRIPE_RATE").flatMap(Int.init) ?? 25
        timeout = nonEmpty("WARREN_PROVIDER_TIMEOUT").flatMap(Double.init).map { Duration.seconds($0) } ?? .seconds(10)
    }

    /// SendGrid when a key is configured, otherwise the log provider.
    public func emailProvider(client: HTTPClient = .providers, logger: Logger, record: LogEmailProvider.Recorder? = nil) throws(ProviderError) -> any EmailProvider {
        guard let sendGridKey else { return LogEmailProvider(logger: logger, record: record) }
        let endpoint = try ProviderEndpoint(
            provider: "sendgrid", baseURL: sendGridURL, apiKey: sendGridKey, timeout: timeout,
            rateLimiter: bucket("sendgrid", max(1, sendGridRate)))
        return SendGridProvider(endpoint: endpoint, client: client, logger: logger)
    }

    /// Stripe when a key is configured, otherwise nil.
    public func paymentProvider(client: HTTPClient = .providers, logger: Logger) throws(ProviderError) -> (any PaymentProvider)? {
        guard let stripeKey else { return nil }
        let endpoint = try ProviderEndpoint(
            provider: "stripe", baseURL: stripeURL, apiKey: stripeKey, timeout: timeout,
            rateLimiter: bucket("stripe", max(1, stripeRate)))
        return StripeProvider(endpoint: endpoint, client: client, logger: logger)
    }
}
