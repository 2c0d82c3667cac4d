import HTTPTypes
import Hummingbird
import WarrenCore
import Webhooks

/// `/v1/webhooks…`: outbound webhook subscriptions, managed with an admin key. What the
/// store refuses comes back as 422 naming the field; an unknown id as 404.
enum WebhookRoutes {
    static let routes = [
        "POST /v1/webhooks", "GET /v1/webhooks", "GET /v1/webhooks/{id}", "PATCH /v1/webhooks/{id}", "DELETE /v1/webhooks/{id}",
        "POST /v1/webhooks/{id}/rotate-secret", "GET /v1/webhooks/{id}/deliveries", "POST /v1/webhooks/{id}/deliveries/{event}/retry",
    ]
}

extension APIFailure {
    init(_ error: WebhookError) {
        switch error.kind {
        case .invalid: self.init(.unprocessableContent, "invalid_webhook", error.description, field: error.field)
        case .notFound: self.init(.notFound, "not_found", error.description)
        }
    }
}

extension Routes {
    func addWebhookSubscriptions(to router: Router<BasicRequestContext>) {
        @Sendable func id(_ context: BasicRequestContext) -> String { context.parameters.get("id") ?? "" }
        router.post("/v1/webhooks") { request, _ in await self.answer { try await self.createSubscription(request) } }
        router.get("/v1/webhooks") { request, _ in
            await self.answer {
                try await self.requireAdmin(request)
                return APIResponse.json(["webhooks": .array(try await self.subscriptions.list().map(\.json))])
            }
        }
        router.get("/v1/webhooks/:id") { request, context in
            await self.answer {
                try await self.requireAdmin(request)
                return APIResponse.json(try await self.subscriptions.get(id(context)).json)
            }
        }
        router.patch("/v1/webhooks/:id") { request, context in await self.answer { try await self.updateSubscription(request, id: id(context)) } }
        router.delete("/v1/webhooks/:id") { request, context in
            await self.answer {
                try await self.requireAdmin(request)
                try await self.subscriptions.delete(id(context))
                return Response(status: .noContent)
            }
        }
        router.post("/v1/webhooks/:id/rotate-secret") { request, context in
            await self.answer {
                try await self.requireAdmin(request)
                let fields = try await self.object(request, allowing: ["secret"], emptyAllowed: true)
                let (subscription, secret) = try await self.subscriptions.rotate(id(context), secret: try Self.string(fields, "secret"))
                return APIResponse.json(Self.withSecret(subscription, secret))
            }
        }
        router.get("/v1/webhooks/:id/deliveries") { request, context in
            await self.answer {
                try await self.requireAdmin(request)
                let query = request.uri.queryParameters
                let limit = query.get("limit", as: Int.self) ?? 100
                let attempts = try await self.subscriptions.attempts(
                    id(context), event: query.get("event"), limit: limit, before: query.get("before", as: Int64.self))
                var body: [String: JSONValue] = ["attempts": .array(attempts.map(\.json))]
                if attempts.count == max(1, min(limit, 1000)), let last = attempts.last { body["next_before"] = .integer(last.id) }
                return APIResponse.json(.object(body))
            }
        }
        router.post("/v1/webhooks/:id/deliveries/:event/retry") { request, context in
            await self.answer {
                try await self.requireAdmin(request)
                let event = context.parameters.get("event") ?? ""
                try await self.subscriptions.retry(id(context), event: event)
                return APIResponse.json(["subscription_id": .string(id(context)), "event_id": .string(event), "status": "pending"], status: .accepted)
            }
        }
    }

    private func requireAdmin(_ request: Request) async throws {
        let key = try await authenticate(request)
        guard key.admin else { throw APIFailure(.forbidden, "admin_required", "key '\(key.name)' is not an admin key (warren keys create --admin)") }
    }

    private func createSubscription(_ request: Request) async throws -> Response {
        try await requireAdmin(request)
        let fields = try await object(request, allowing: ["url", "events", "secret", "description"])
        guard let url = try Self.string(fields, "url") else { throw APIFailure(.badRequest, "invalid_webhook", "url is required", field: "url") }
        guard let events = try Self.strings(fields, "events") else {
            throw APIFailure(.badRequest, "invalid_webhook", "events is required: an array of event patterns, e.g. [\"user.*\"]", field: "events")
        }
        let (subscription, secret) = try await subscriptions.create(
            url: url, eventPatterns: events, secret: try Self.string(fields, "secret"), description: try Self.string(fields, "description"))
        return APIResponse.json(Self.withSecret(subscription, secret), status: .created)
    }

    private func updateSubscription(_ request: Request, id: String) async throws -> Response {
        try await requireAdmin(request)
        let fields = try await object(request, allowing: ["url", "events", "enabled", "description"])
        var changes = WebhookSubscriptions.Changes(url: try Self.string(fields, "url"), eventPatterns: try Self.strings(fields, "events"))
        switch fields["enabled"] {
        case nil: break
        case .bool(let enabled): changes.enabled = enabled
        default: throw APIFailure(.badRequest, "invalid_webhook", "enabled must be true or false", field: "enabled")
        }
        switch fields["description"] {
        case nil: break
        case .null: changes.description = .some(nil)
        default: changes.description = .some(try Self.string(fields, "description"))
        }
        return APIResponse.json(try await subscriptions.update(id, changes).json)
    }

    /// The body as a JSON object with only the named fields.
    private func object(_ request: Request, allowing allowed: Set<String>, emptyAllowed: Bool = false) async throws -> [String: JSONValue] {
        let bytes = try await body(request)
        if emptyAllowed && bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [:] }
        guard case .object(let fields) = try json(bytes) else { throw APIFailure(.badRequest, "invalid_webhook", "the body must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIFailure(.badRequest, "invalid_webhook", "unknown field '\(unknown)'; known: \(allowed.sorted().joined(separator: ", "))", field: unknown)
        }
        return fields
    }

    private static func string(_ fields: [String: JSONValue], _ name: String) throws(APIFailure) -> String? {
        switch fields[name] {
        case nil, .null: return nil
        case .string(let value): return value
        default: throw APIFailure(.badRequest, "invalid_webhook", "\(name) must be a string", field: name)
        }
    }

    private static func strings(_ fields: [String: JSONValue], _ name: String) throws(APIFailure) -> [String]? {
        switch fields[name] {
        case nil: return nil
        case .array(let items):
            return try items.map { item throws(APIFailure) in
                guard case .string(let value) = item else {
                    throw APIFailure(.badRequest, "invalid_webhook", "\(name) must be an array of strings", field: name)
                }
                return value
            }
        default: throw APIFailure(.badRequest, "invalid_webhook", "\(name) must be an array of strings", field: name)
        }
    }

    private static func withSecret(_ subscription: WebhookSubscription, _ secret: String) -> JSONValue {
        guard case .object(var object) = subscription.json else { return subscription.json }
        object["secret"] = .string(secret)
        return .object(object)
    }
}
