import AsyncHTTPClient
import Foundation
import Logging
import WarrenCore

/// SendGrid v3 Mail Send (`POST /v3/mail/send`): 202 means accepted, with the message id
/// in `X-Message-Id`. 429 waits for `X-RateLimit-Reset` (epoch seconds) or Retry-After;
/// other 4xx are permanent and carry SendGrid's `errors[].message`; 5xx and connections
/// that could not be made are transient. SendGrid has no idempotency key, so a timeout or a
/// connection dropped after the request went out is `.outcomeUnknown`: the email may have
/// been accepted, and it is not sent again.
public struct SendGridProvider: EmailProvider {
    public let name = "sendgrid"
    private let call: ProviderCall

    public init(endpoint: ProviderEndpoint, client: HTTPClient = .providers, logger: Logger) {
        call = ProviderCall(provider: "sendgrid", endpoint: endpoint, client: client, logger: logger, idempotent: false)
    }

    public func send(_ email: Email) async throws -> String? {
        let response = try await call.post(
            "/v3/mail/send", contentType: "application/json", body: try JSONEncoder().encode(Self.body(email)).map { $0 },
            rejected: Self.rejection)
        return response.headers.first(name: "X-Message-Id")
    }

    // MARK: Wire format

    struct Body: Encodable {
        struct Address: Encodable {
            var email: String
            var name: String?
        }
        struct Personalization: Encodable {
            var to: [Address]
            var dynamic_template_data: [String: JSONValue]?
        }
        struct Content: Encodable {
            var type: String
            var value: String
        }
        var personalizations: [Personalization]
        var from: Address
        var subject: String?
        var content: [Content]?
        var template_id: String?
    }

    static func body(_ email: Email) -> Body {
        let to = Body.Address(email: email.to.email, name: email.to.name)
        let from = Body.Address(email: email.from.email, name: email.from.name)
        switch email.content {
        case .text(let subject, let text):
            return Body(
                personalizations: [.init(to: [to])], from: from, subject: subject, content: [.init(type: "text/plain", value: text)])
        case .template(let id, let data):
            return Body(personalizations: [.init(to: [to], dynamic_template_data: data)], from: from, template_id: id)
        }
    }

    private struct ErrorBody: Decodable {
        struct Item: Decodable { var message: String? }
        var errors: [Item]
    }

    static func rejection(_ response: ProviderCall.Response) -> ProviderError {
        let messages = (try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)))?.errors.compactMap(\.message) ?? []
        var wait: Duration?
        if response.status == 429, let reset = response.headers.first(name: "X-RateLimit-Reset").flatMap(Double.init) {
            wait = .seconds(max(0, reset - Date().timeIntervalSince1970))
        }
        return .http(
            provider: "sendgrid", response, code: nil, message: messages.isEmpty ? nil : messages.joined(separator: "; "), retryAfter: wait)
    }
}
