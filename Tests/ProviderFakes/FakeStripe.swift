import Foundation
import Hummingbird
import Locking

/// Stripe's `/v1/customers` and `/v1/payment_intents` on loopback, checking what Stripe
/// documents: `Authorization: Bearer sk_…` (401 otherwise), form-encoded bodies (400 for
/// another content type or broken encoding), the pinned `Stripe-Version`, required
/// parameters, and — stricter than Stripe, as Warren's contract — an `Idempotency-Key` on
/// every POST. Keys behave like Stripe's: the same key replays the first answer
/// (`Idempotent-Replayed: true`) and creates nothing; reused with other parameters it is
/// a 400 `idempotency_error`. Errors use `{"error": {"type", "code", "message"}}`.
public final class FakeStripe: Sendable {
    public struct Customer: Sendable {
        public var id: String
        public var email: String
        public var name: String?
        public var userID: String?
    }

    public struct Intent: Sendable {
        public var id: String
        public var amount: Int
        public var currency: String
        public var customer: String
    }

    private struct State {
        var customers: [Customer] = []
        var intents: [Intent] = []
        var replayed = 0
        /// Idempotency key → (parameters, status, body) of the first answer.
        var replies: [String: (form: [String: String], status: Int, body: [String: String])] = [:]
    }

    public static let apiVersion = "2024-06-20"

    public let server: FakeProviderServer
    public let apiKey: String
    private let state = Mutex(State())

    public var customers: [Customer] { state.withLock { $0.customers } }
    public var intents: [Intent] { state.withLock { $0.intents } }
    /// Requests answered from an idempotency record.
    public var replayed: Int { state.withLock { $0.replayed } }
    public var baseURL: String { server.baseURL }

    public static func start(apiKey: String = "sk_test_fake") async throws -> FakeStripe {
        let box = Mutex<FakeStripe?>(nil)
        let server = try await FakeProviderServer.start { router in
            router.post("/v1/customers") { request, _ in try await box.withLock { $0 }!.handle(request, path: "/v1/customers") }
            router.post("/v1/payment_intents") { request, _ in try await box.withLock { $0 }!.handle(request, path: "/v1/payment_intents") }
        }
        let fake = FakeStripe(server: server, apiKey: apiKey)
        box.withLock { $0 = fake }
        return fake
    }

    private init(server: FakeProviderServer, apiKey: String) {
        self.server = server
        self.apiKey = apiKey
    }

    public func stop() { server.stop() }

    private func handle(_ request: Request, path: String) async throws -> Response {
        guard request.bearerToken == apiKey else {
            return Self.error(401, type: "invalid_request_error", message: "Invalid API Key provided: sk_****")
        }
        guard request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid request: the body must be application/x-www-form-urlencoded")
        }
        guard request.header("Stripe-Version") == Self.apiVersion else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid Stripe API version: \(request.header("Stripe-Version") ?? "none")")
        }
        guard let key = request.header("Idempotency-Key"), !key.isEmpty else {
            return Self.error(400, type: "invalid_request_error", message: "An Idempotency-Key header is required")
        }
        guard let form = Self.decodeForm(try await request.bodyBytes()) else {
            return Self.error(400, type: "invalid_request_error", message: "Invalid form encoding")
        }
        if let reply = state.withLock({ state in state.replies[key].map { state.replayed += 1; return $0 } }) {
            guard reply.form == form else {
                return Self.error(
                    400, type: "idempotency_error",
                    message: "Keys for idempotent requests can only be used with the same parameters they were first used with.")
            }
            return FakeProviderServer.json(reply.status, reply.body, headers: [.init("Idempotent-Replayed")!: "true"])
        }
        let fault = server.admit(path, idempotencyKey: key)
        switch fault {
        case .status(let status, let type, let code, let message):
            return Self.error(status, type: type, code: code, message: message)
        case .rateLimited(let resetIn):
            return Self.error(
                429, type: "invalid_request_error", code: "rate_limit", message: "Too many requests",
                headers: [.init("Retry-After")!: "\(Int((resetIn / .seconds(1)).rounded(.up)))"])
        case .redirect(let location):
            return FakeProviderServer.redirect(to: location)
        case .hang(let duration):
            try? await Task.sleep(for: duration)
            return Self.error(500, type: "api_error", message: "too late")
        case .dropAfterProcessing, .hangAfterProcessing, nil:
            let response = path == "/v1/customers" ? createCustomer(form, key: key) : createIntent(form, key: key)
            if case .hangAfterProcessing(let duration) = fault { try? await Task.sleep(for: duration) }
            if case .dropAfterProcessing = fault { return FakeProviderServer.dropped(response) }
            return response
        }
    }

    private func createCustomer(_ form: [String: String], key: String) -> Response {
        guard let email = form["email"], email.contains("@") else {
            return Self.error(400, type: "invalid_request_error", code: "parameter_missing", message: "Missing required param: email.")
        }
        guard let userID = form["metadata[user_id]"] else {
            return Self.error(400, type: "invalid_request_error", code: "parameter_missing", message: "Missing required param: metadata[user_id].")
        }
        let id = "cus_" + UUID().uuidString.prefix(14).replacingOccurrences(of: "-", with: "")
        return state.withLock { state in
            state.customers.append(Customer(id: id, email: email, name: form["name"], userID: userID))
            let body = ["id": id, "object": "customer", "email": email]
            state.replies[key] = (form, 200, body)
            return FakeProviderServer.json(200, body)
        }
    }

    private func createIntent(_ form: [String: String], key: String) -> Response {
        guard let amount = form["amount"].flatMap(Int.init), amount > 0 else {
            return Self.error(400, type: "invalid_request_error", code: "parameter_invalid_integer", message: "Invalid integer: amount")
        }
        guard let currency = form["currency"], currency.wholeMatch(of: /[a-z]{3}/) != nil else {
            return Self.error(400, type: "invalid_request_error", code: "parameter_missing", message: "Missing or invalid param: currency.")
        }
        guard form["automatic_payment_methods[enabled]"] == "true" else {
            return Self.error(400, type: "invalid_request_error", code: "parameter_missing", message: "Missing required param: automatic_payment_methods[enabled].")
        }
        guard let customer = form["customer"], customers.contains(where: { $0.id == customer }) else {
            return Self.error(400, type: "invalid_request_error", code: "resource_missing", message: "No such customer: '\(form["customer"] ?? "")'")
        }
        let id = "pi_" + UUID().uuidString.prefix(14).replacingOccurrences(of: "-", with: "")
        return state.withLock { state in
            state.intents.append(Intent(id: id, amount: amount, currency: currency, customer: customer))
            let body = ["id": id, "object": "payment_intent", "status": "requires_payment_method"]
            state.replies[key] = (form, 200, body)
            return FakeProviderServer.json(200, body)
        }
    }

    /// `a=1&b%5Bc%5D=x+y` → ["a": "1", "b[c]": "x y"]; nil for broken encoding.
    public static func decodeForm(_ bytes: [UInt8]) -> [String: String]? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2,
                  let key = parts[0].replacingOccurrences(of: "+", with: " ").removingPercentEncoding,
                  let value = parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            else { return nil }
            form[key] = value
        }
        return form
    }

    public static func error(_ status: Int, type: String, code: String? = nil, message: String, headers: HTTPFields = [:]) -> Response {
        var detail: [String: Any] = ["type": type, "message": message]
        if let code { detail["code"] = code }
        return FakeProviderServer.json(status, ["error": detail], headers: headers)
    }
}
