import Foundation
import Postgres
import WarrenCore

/// A refusal of a subscription operation, in one line: `.invalid` names the field to fix
/// (HTTP 400/422, CLI exit 1), `.notFound` the subscription or delivery that is not there.
public struct WebhookError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable { case invalid, notFound }
    public var kind: Kind
    public var field: String?
    public var description: String

    static func invalid(_ field: String, _ message: String) -> WebhookError { .init(kind: .invalid, field: field, description: message) }
    static func notFound(_ message: String) -> WebhookError { .init(kind: .notFound, field: nil, description: message) }
}

/// A subscriber's endpoint and the events it wants, without its secrets.
public struct WebhookSubscription: Sendable, Equatable {
    public var id: String
    public var url: String
    /// Topic patterns over event types (`user.*`, `payment.#`, `#`).
    public var eventPatterns: [String]
    public var description: String?
    public var enabled: Bool
    public var disabledReason: String?
    /// The first failure since the last success, if the endpoint is failing.
    public var failingSince: Date?
    /// While a rotation overlaps: when the previous secret stops signing.
    public var previousSecretExpiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    /// As the API and `--json` show it.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "url": .string(url), "events": .array(eventPatterns.map { .string($0) }), "enabled": .bool(enabled),
            "created_at": .string(RFC3339.format(createdAt)), "updated_at": .string(RFC3339.format(updatedAt)),
        ]
        object["description"] = description.map { .string($0) } ?? .null
        object["disabled_reason"] = disabledReason.map { .string($0) } ?? .null
        object["failing_since"] = failingSince.map { .string(RFC3339.format($0)) } ?? .null
        if let previousSecretExpiresAt, previousSecretExpiresAt > Date() {
            object["previous_secret_expires_at"] = .string(RFC3339.format(previousSecretExpiresAt))
        }
        return .object(object)
    }
}

/// One attempt of the delivery log.
public struct DeliveryAttempt: Sendable, Equatable {
    public var id: Int64
    public var eventID: String
    public var attempt: Int
    public var attemptedAt: Date
    public var statusCode: Int?
    public var latencyMilliseconds: Double
    /// `delivered`, `retry`, `failed` or `gone`.
    public var outcome: String
    public var error: String?

    public var json: JSONValue {
        [
            "id": .integer(id), "event_id": .string(eventID), "attempt": .integer(Int64(attempt)), "attempted_at": .string(RFC3339.format(attemptedAt)),
            "status_code": statusCode.map { .integer(Int64($0)) } ?? .null, "latency_ms": .number((latencyMilliseconds * 10).rounded() / 10),
            "outcome": .string(outcome), "error": error.map { .string($0) } ?? .null,
        ]
    }
}

/// Subscriptions in PostgreSQL (`warren_webhook_subscriptions`, migration 0009): what the
/// HTTP API (`/v1/webhooks…`) and `warren webhooks …` both use.
public struct WebhookSubscriptions: Sendable {
    let database: PostgresPool
    let destinations: DestinationGuard
    /// How secrets are stored (`WARREN_SECRETS_KEY`).
    let sealer: SecretSealer

    /// How long a rotated-out secret keeps signing next to the new one.
    public static let rotationOverlap: Duration = .seconds(86_400)

    public init(database: PostgresPool, destinations: DestinationGuard, sealer: SecretSealer = .clear) {
        self.database = database
        self.destinations = destinations
        self.sealer = sealer
    }

    public struct Changes: Sendable {
        public var url: String?
        public var eventPatterns: [String]?
        public var enabled: Bool?
        public var description: String??

        public init(url: String? = nil, eventPatterns: [String]? = nil, enabled: Bool? = nil, description: String?? = nil) {
            self.url = url
            self.eventPatterns = eventPatterns
            self.enabled = enabled
            self.description = description
        }
    }

    /// Creates a subscription; returns it with its secret (the given one, or a new
    /// `whsec_` one), the only time the secret is shown.
    public func create(url: String, eventPatterns: [String], secret: String?, description: String?) async throws -> (WebhookSubscription, String) {
        let url = try await checkURL(url)
        try Self.checkPatterns(eventPatterns)
        let secret = secret ?? WebhookSigning.newSecret()
        try Self.checkSecret(secret)
        try Self.checkDescription(description)
        let id = Self.newID()
        let rows = try await database.withConnection { connection in
            try await connection.query("""
                INSERT INTO warren_webhook_subscriptions (id, url, event_patterns, description, secret)
                VALUES (\(id), \(url), \(PostgresArrayLiteral.text(eventPatterns))::text[], \(description), \(sealer.seal(secret, subscription: id)))
                RETURNING \(sql: Self.columns)
                """)
        }
        return (try Self.subscription(rows[0]), secret)
    }

    public func list() async throws -> [WebhookSubscription] {
        try await database.withConnection { connection in
            try await connection.query("SELECT \(sql: Self.columns) FROM warren_webhook_subscriptions ORDER BY created_at, id")
        }.map(Self.subscription)
    }

    public func get(_ id: String) async throws -> WebhookSubscription {
        try Self.checkID(id)
        let rows = try await database.withConnection { connection in
            try await connection.query("SELECT \(sql: Self.columns) FROM warren_webhook_subscriptions WHERE id = \(id)")
        }
        guard let row = rows.first else { throw WebhookError.notFound("no webhook subscription '\(id)'") }
        return try Self.subscription(row)
    }

    /// Changes what is given; enabling clears the failure record, so a re-enabled endpoint
    /// gets its full grace period again.
    public func update(_ id: String, _ changes: Changes) async throws -> WebhookSubscription {
        try Self.checkID(id)
        var changes = changes
        if let url = changes.url { changes.url = try await checkURL(url) }
        if let patterns = changes.eventPatterns { try Self.checkPatterns(patterns) }
        if let description = changes.description { try Self.checkDescription(description) }
        let patterns = changes.eventPatterns.map { PostgresArrayLiteral.text($0) }
        let rows = try await database.withConnection { connection in
            try await connection.query("""
                UPDATE warren_webhook_subscriptions SET
                    url = COALESCE(\(changes.url)::text, url),
                    event_patterns = COALESCE(\(patterns)::text[], event_patterns),
                    description = CASE WHEN \(changes.description != nil) THEN \(changes.description ?? nil)::text ELSE description END,
                    enabled = COALESCE(\(changes.enabled)::boolean, enabled),
                    disabled_reason = CASE WHEN \(changes.enabled)::boolean IS NULL THEN disabled_reason
                                           WHEN \(changes.enabled)::boolean THEN NULL ELSE 'disabled by an operator' END,
                    failing_since = CASE WHEN \(changes.enabled)::boolean THEN NULL ELSE failing_since END,
                    updated_at = now()
                WHERE id = \(id)
                RETURNING \(sql: Self.columns)
                """)
        }
        guard let row = rows.first else { throw WebhookError.notFound("no webhook subscription '\(id)'") }
        return try Self.subscription(row)
    }

    /// Deletes the subscription with its pending deliveries and its log.
    public func delete(_ id: String) async throws {
        try Self.checkID(id)
        let deleted = try await database.withConnection { connection in
            try await connection.execute("DELETE FROM warren_webhook_subscriptions WHERE id = \(id)")
        }
        guard deleted == 1 else { throw WebhookError.notFound("no webhook subscription '\(id)'") }
    }

    /// A new secret (given or generated) signs from now on; the current one keeps signing
    /// next to it for `rotationOverlap`. Returns the new secret, shown only here.
    public func rotate(_ id: String, secret: String? = nil) async throws -> (WebhookSubscription, String) {
        try Self.checkID(id)
        let secret = secret ?? WebhookSigning.newSecret()
        try Self.checkSecret(secret)
        let overlap = Self.rotationOverlap.inSeconds
        let rows = try await database.withConnection { connection in
            try await connection.query("""
                UPDATE warren_webhook_subscriptions SET previous_secret = secret, secret = \(sealer.seal(secret, subscription: id)),
                    previous_secret_expires_at = now() + make_interval(secs => \(overlap)), updated_at = now()
                WHERE id = \(id)
                RETURNING \(sql: Self.columns)
                """)
        }
        guard let row = rows.first else { throw WebhookError.notFound("no webhook subscription '\(id)'") }
        return (try Self.subscription(row), secret)
    }

    /// The delivery log, newest first: at most `limit` attempts older than `before` (an
    /// attempt id, for paging), of one event if given.
    public func attempts(_ id: String, event: String? = nil, limit: Int = 100, before: Int64? = nil) async throws -> [DeliveryAttempt] {
        _ = try await get(id)
        if let event, Self.hasControlCharacters(event) { return [] }
        let limit = max(1, min(limit, 1000))
        return try await database.withConnection { connection in
            try await connection.query("""
                SELECT id, event_id, attempt, attempted_at, status_code, latency_ms, outcome, error FROM warren_webhook_attempts
                WHERE subscription_id = \(id) AND (\(event)::text IS NULL OR event_id = \(event)::text)
                  AND (\(before)::bigint IS NULL OR id < \(before))
                ORDER BY id DESC LIMIT \(limit)
                """)
        }.map { row in
            DeliveryAttempt(
                id: try row.decode(Int64.self, "id"), eventID: try row.decode(String.self, "event_id"),
                attempt: Int(try row.decode(Int32.self, "attempt")), attemptedAt: try row.decode(Date.self, "attempted_at"),
                statusCode: try row.decode(Int32?.self, "status_code").map { Int($0) }, latencyMilliseconds: try row.decode(Double.self, "latency_ms"),
                outcome: try row.decode(String.self, "outcome"), error: try row.decode(String?.self, "error"))
        }
    }

    /// Makes a delivery pending again, due now, with its full retry schedule (whatever
    /// its state: a delivered one is sent once more, with the same `webhook-id`).
    public func retry(_ id: String, event: String) async throws {
        try Self.checkID(id)
        guard !Self.hasControlCharacters(event) else { throw WebhookError.notFound("no delivery of that event to webhook subscription '\(id)'") }
        let changed = try await database.withConnection { connection in
            let changed = try await connection.execute("""
                UPDATE warren_webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
                WHERE subscription_id = \(id) AND event_id = \(event)
                """)
            if changed == 1 { _ = try await connection.execute("SELECT pg_notify(\(WebhookDeliveries.notificationChannel), '')") }
            return changed
        }
        guard changed == 1 else { throw WebhookError.notFound("no delivery of event '\(event)' to webhook subscription '\(id)'") }
    }

    /// Seals every stored secret that is not sealed under the current key yet: those
    /// stored before `WARREN_SECRETS_KEY` was set, and those under a key that is being
    /// rotated out (still listed after the new one). Each row is changed only if it still
    /// holds what was read, so concurrent callers and rotations are safe. Returns how many
    /// secrets were sealed and the subscriptions whose secret could not be opened (sealed
    /// under a key no longer listed); nothing without a key.
    public func sealStoredSecrets() async throws -> (sealed: Int, unreadable: [String]) {
        guard sealer.seals else { return (0, []) }
        return try await database.withConnection { connection in
            var sealed = 0
            var unreadable: [String] = []
            for column in ["secret", "previous_secret"] {
                let rows = try await connection.query(
                    "SELECT id, \(identifier: column) AS stored FROM warren_webhook_subscriptions WHERE \(identifier: column) IS NOT NULL ORDER BY id")
                for row in rows {
                    let id = try row.decode(String.self, "id"), stored = try row.decode(String.self, "stored")
                    guard !sealer.isSealedUnderCurrentKey(stored) else { continue }
                    guard let secret = try? sealer.open(stored, subscription: id) else {
                        if !unreadable.contains(id) { unreadable.append(id) }
                        continue
                    }
                    let resealed = sealer.seal(secret, subscription: id)
                    sealed += try await connection.execute("""
                        UPDATE warren_webhook_subscriptions SET \(identifier: column) = \(resealed)
                        WHERE id = \(id) AND \(identifier: column) = \(stored)
                        """)
                }
            }
            return (sealed, unreadable)
        }
    }

    // MARK: Checks

    /// The URL as stored (scheme and host lowercased), once the guard let it through.
    private func checkURL(_ url: String) async throws(WebhookError) -> String {
        do throws(DestinationRefusal) {
            let destination = try destinations.check(url)
            _ = try await destinations.resolve(destination)
            return destination.url
        } catch {
            throw .invalid("url", error.description)
        }
    }

    static func checkPatterns(_ patterns: [String]) throws(WebhookError) {
        guard !patterns.isEmpty else { throw .invalid("events", "name at least one event pattern, e.g. [\"user.*\"] or [\"#\"]") }
        guard patterns.count <= 100 else { throw .invalid("events", "at most 100 event patterns") }
        for pattern in patterns where pattern.utf8.count > 255 || hasControlCharacters(pattern) || !EventCatalog.isValidPatternText(pattern) {
            throw .invalid("events", "'\(pattern.prefix(100))' is not an event pattern (words separated by dots, '*' one word, '#' any)")
        }
    }

    /// An id that cannot exist (control characters would not even reach the database).
    static func checkID(_ id: String) throws(WebhookError) {
        guard !hasControlCharacters(id), id.utf8.count <= 100 else { throw .notFound("no webhook subscription with that id") }
    }

    /// Control characters (NUL among them) cannot be stored or sent in a header.
    static func hasControlCharacters(_ text: String) -> Bool { text.utf8.contains { $0 < 0x20 || $0 == 0x7F } }

    static func checkSecret(_ secret: String) throws(WebhookError) {
        guard !hasControlCharacters(secret) else { throw .invalid("secret", "a secret must not contain control characters") }
        guard secret.utf8.count >= 16, secret.utf8.count <= 256 else { throw .invalid("secret", "a secret is 16 to 256 bytes") }
        guard WebhookSigning.key(for: secret) != nil else { throw .invalid("secret", "a whsec_ secret is whsec_ followed by base64") }
    }

    static func checkDescription(_ description: String?) throws(WebhookError) {
        if let description, description.utf8.count > 1000 { throw .invalid("description", "a description is at most 1000 bytes") }
        if let description, description.utf8.contains(0) { throw .invalid("description", "a description must not contain NUL characters") }
    }

    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return "wh_" + Hex.encode((0..<12).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    static let columns: StaticString = """
        id, url, array_to_string(event_patterns, ' ') AS event_patterns, description, enabled, disabled_reason, failing_since,
        previous_secret_expires_at, created_at, updated_at
        """

    static func subscription(_ row: PostgresRow) throws -> WebhookSubscription {
        WebhookSubscription(
            id: try row.decode(String.self, "id"), url: try row.decode(String.self, "url"),
            eventPatterns: try row.decode(String.self, "event_patterns").split(separator: " ").map(String.init),
            description: try row.decode(String?.self, "description"), enabled: try row.decode(Bool.self, "enabled"),
            disabledReason: try row.decode(String?.self, "disabled_reason"), failingSince: try row.decode(Date?.self, "failing_since"),
            previousSecretExpiresAt: try row.decode(Date?.self, "previous_secret_expires_at"), createdAt: try row.decode(Date.self, "created_at"),
            updatedAt: try row.decode(Date.self, "updated_at"))
    }
}
