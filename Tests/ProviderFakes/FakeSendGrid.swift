import Foundation
import Hummingbird
import Locking
import WarrenCore

/// SendGrid v3 Mail Send on loopback, checking what SendGrid documents: `Authorization:
/// Bearer <key>` (401 otherwise), a JSON body (400 for another content type or broken
/// JSON), personalizations with recipients, a sender, and either a template id or a
/// subject with content (400 naming the field otherwise). Accepted mail gets 202 and an
/// `X-Message-Id`. Errors use SendGrid's `{"errors": [{"message", "field"}]}`.
public final class FakeSendGrid: Sendable {
    public struct Mail: Sendable {
        public var messageID: String
        public var to: String
        public var toName: String?
        public var from: String
        public var subject: String?
        public var text: String?
        public var templateID: String?
        public var templateData: JSONValue?
        /// The W3C `traceparent` and `tracestate` headers the request came with.
        public var traceparent: String?
        public var tracestate: String?
        /// When the fake accepted it (for rate checks).
        public var acceptedAt = ContinuousClock.now
    }

    public let server: FakeProviderServer
    public let apiKey: String
    private let accepted = Mutex<[Mail]>([])

    public var mail: [Mail] { accepted.withLock { $0 } }
    public var baseURL: String { server.baseURL }

    public static func start(apiKey: String = "SG.test-key") async throws -> FakeSendGrid {
        let box = Mutex<FakeSendGrid?>(nil)
        let server = try await FakeProviderServer.start { router in
            router.post("/v3/mail/send") { request, _ in
                try await box.withLock { $0 }!.send(request)
            }
        }
        let fake = FakeSendGrid(server: server, apiKey: apiKey)
        box.withLock { $0 = fake }
        return fake
    }

    private init(server: FakeProviderServer, apiKey: String) {
        self.server = server
        self.apiKey = apiKey
    }

    public func stop() { server.stop() }

    private struct Body: Decodable {
        struct Address: Decodable {
            var email: String?
            var name: String?
        }
        struct Personalization: Decodable {
            var to: [Address]?
            var dynamic_template_data: JSONValue?
        }
        struct Content: Decodable {
            var type: String?
            var value: String?
        }
        var personalizations: [Personalization]?
        var from: Address?
        var subject: String?
        var content: [Content]?
        var template_id: String?
    }

    private func send(_ request: Request) async throws -> Response {
        guard request.bearerToken == apiKey else {
            return Self.error(401, "The provided authorization grant is invalid, expired, or revoked", field: nil)
        }
        guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
            return Self.error(400, "Content-Type should be application/json.", field: nil)
        }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(try await request.bodyBytes())) else {
            return Self.error(400, "Bad Request", field: nil)
        }
        guard let personalization = body.personalizations?.first, let to = personalization.to?.first, let address = to.email, address.contains("@") else {
            return Self.error(400, "The personalizations field is required and must have at least one personalization with a valid to address.", field: "personalizations")
        }
        guard let from = body.from?.email, from.contains("@") else {
            return Self.error(400, "The from object must be provided for every email send.", field: "from")
        }
        let text = body.content?.first { $0.type == "text/plain" }?.value
        if body.template_id == nil {
            guard body.subject?.isEmpty == false else { return Self.error(400, "The subject is required.", field: "subject") }
            guard text?.isEmpty == false else { return Self.error(400, "The content value must be a string at least one character in length.", field: "content.0.value") }
        }
        let fault = server.admit("/v3/mail/send", idempotencyKey: nil)
        switch fault {
        case .status(let status, _, _, let message):
            return Self.error(status, message, field: nil)
        case .rateLimited(let resetIn):
            let reset = Int((Date().timeIntervalSince1970 + resetIn / .seconds(1)).rounded(.up))
            return FakeProviderServer.json(
                429, ["errors": [["message": "too many requests", "field": NSNull()]]],
                headers: [.init("X-RateLimit-Reset")!: "\(reset)", .init("X-RateLimit-Limit")!: "600", .init("X-RateLimit-Remaining")!: "0"])
        case .redirect(let location):
            return FakeProviderServer.redirect(to: location)
        case .hang(let duration):
            try? await Task.sleep(for: duration)
            return Self.error(500, "too late", field: nil)
        case .dropAfterProcessing, .hangAfterProcessing, nil:
            let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            accepted.withLock {
                $0.append(Mail(
                    messageID: id, to: address, toName: to.name, from: from, subject: body.subject, text: text,
                    templateID: body.template_id, templateData: personalization.dynamic_template_data,
                    traceparent: request.headers[.init("traceparent")!], tracestate: request.headers[.init("tracestate")!]))
            }
            let response = Response(status: .accepted, headers: [.init("X-Message-Id")!: id])
            if case .hangAfterProcessing(let duration) = fault { try? await Task.sleep(for: duration) }
            if case .dropAfterProcessing = fault { return FakeProviderServer.dropped(response) }
            return response
        }
    }

    public static func error(_ status: Int, _ message: String, field: String?) -> Response {
        FakeProviderServer.json(status, ["errors": [["message": message, "field": field.map { $0 as Any } ?? NSNull(), "help": NSNull()]]])
    }
}
