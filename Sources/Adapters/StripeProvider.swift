import AsyncHTTPClient
import Foundation
import Logging

/// Stripe's API: form-encoded POSTs with a pinned `Stripe-Version` and an
/// `Idempotency-Key` on every one. Stripe's `{"error": {"type", "code", "message"}}` is
/// read as transient for `api_error`, 429, 5xx, timeouts and dropped connections, and
/// permanent for `card_error`, `invalid_request_error` and other 4xx.
public struct StripeProvider: PaymentProvider {
    public static let apiVersion = "2024-06-20"

    public let name = "stripe"
    private let call: ProviderCall

    public init(endpoint: ProviderEndpoint, client: HTTPClient = .providers, logger: Logger) {
        call = ProviderCall(provider: "stripe", endpoint: endpoint, client: client, logger: logger, idempotent: true)
    }

    public func createCustomer(_ customer: NewCustomer, idempotencyKey: String) async throws -> String {
        var form = [("email", customer.email), ("metadata[user_id]", customer.userID)]
        if let name = customer.name { form.append(("name", name)) }
        struct Created: Decodable { var id: String }
        return try await post("/v1/customers", form, idempotencyKey: idempotencyKey, as: Created.self).id
    }

    public func createPaymentIntent(_ intent: NewPaymentIntent, idempotencyKey: String) async throws -> PaymentIntent {
        let form = [
            ("amount", String(intent.amount)), ("currency", intent.currency.lowercased()), ("customer", intent.customerID),
            ("automatic_payment_methods[enabled]", "true"),
        ]
        return try await post("/v1/payment_intents", form, idempotencyKey: idempotencyKey, as: PaymentIntent.self)
    }

    private func post<T: Decodable>(_ path: String, _ form: [(String, String)], idempotencyKey: String, as: T.Type) async throws -> T {
        let response = try await call.post(
            path, contentType: "application/x-www-form-urlencoded", body: Array(FormEncoding.encode(form).utf8),
            headers: [("Stripe-Version", Self.apiVersion), ("Idempotency-Key", idempotencyKey)], rejected: Self.rejection)
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body))
        } catch {
            throw ProviderError(.transient, provider: "stripe", status: response.status, code: "invalid_response", "\(path) answered \(response.status) with an unreadable body")
        }
    }

    private struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var type: String?
            var code: String?
            var message: String?
        }
        var error: Detail
    }

    static func rejection(_ response: ProviderCall.Response) -> ProviderError {
        let detail = (try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)))?.error
        let code = [detail?.type, detail?.code].compactMap { $0 }.joined(separator: "/")
        var error = ProviderError.http(provider: "stripe", response, code: code.isEmpty ? nil : code, message: detail?.message)
        // Stripe's own word wins over the status: api_error is its side's problem.
        if detail?.type == "api_error" { error.kind = .transient }
        return error
    }
}

/// `application/x-www-form-urlencoded` as Stripe reads it: brackets in keys for nested
/// parameters (`metadata[user_id]`), everything but unreserved characters escaped.
enum FormEncoding {
    private static let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }
}
