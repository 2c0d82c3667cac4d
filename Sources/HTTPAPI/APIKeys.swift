import Crypto
import Foundation
import Postgres
import SharedState
import WarrenCore

/// An API key's record: what it may publish, never the key itself.
public struct APIKey: Sendable, Equatable, Codable {
    public var name: String
    /// Topic patterns (`user.*`, `#`) of the event types it may publish; none = nothing.
    public var eventPatterns: [String]
    public var admin: Bool
    /// Requests per second, if limited.
    public var ratePerSecond: Int?
    public var createdAt: Date?
    public var revokedAt: Date?

    public init(name: String, eventPatterns: [String], admin: Bool = false, ratePerSecond: Int? = nil) {
        self.name = name
        self.eventPatterns = eventPatterns
        self.admin = admin
        self.ratePerSecond = ratePerSecond
    }

    public func mayPublish(_ type: String) -> Bool {
        eventPatterns.contains { EventCatalog.matches(pattern: $0, type: type) }
    }
}

/// A request of the operator (a key to create, an address) that cannot be done, said in one line.
public struct HTTPAPIError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// API keys in PostgreSQL (`warren_api_keys`, migration 0008). A key is `wk_` and 32
/// random bytes (256 bits) in base64url; only its SHA-256 is stored, so a leaked table
/// does not leak keys, and lookups are one indexed equality.
///
/// Lookups go through a read-through cache (`SharedStore`): the process keeps a valid
/// key for `localTTL` (`WARREN_HTTP_KEY_CACHE`), Redis (when configured) for as long, at
/// least 1 s; a revocation invalidates both in every process at once (the local copies
/// through the `warren:invalidate` channel). A revocation Redis was not told of (it was
/// down, or the CLI had no `WARREN_REDIS_URL`) takes effect within twice that.
public struct APIKeyStore: Sendable {
    let database: PostgresPool
    public let shared: SharedStore?
    let cache: SharedCache<APIKey>?

    /// The namespace of the key cache (`SharedStore`).
    public static let cacheNamespace = "apikeys"

    /// `shared`: the cache and where revocations are announced; `localTTL`: how long this
    /// process remembers a valid key (zero: it asks the cache or the database every time).
    public init(database: PostgresPool, shared: SharedStore? = nil, localTTL: Duration = .zero) {
        self.database = database
        self.shared = shared
        self.cache = shared?.cache(APIKey.self, namespace: Self.cacheNamespace, ttl: max(.seconds(1), localTTL), localTTL: localTTL)
    }

    static let prefix = "wk_"

    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return prefix + Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// `wk_` and 43 base64url characters, as `newSecret` makes them.
    static func isWellFormed(_ secret: String) -> Bool {
        let bytes = Array(secret.utf8)
        guard bytes.count == 46, secret.hasPrefix(prefix) else { return false }
        return bytes.dropFirst(3).allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }

    static func hash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Array(secret.utf8)))
    }

    /// Creates a key and returns it: the only time it is ever shown.
    public func create(_ key: APIKey) async throws -> String {
        guard !key.name.isEmpty, key.name.count <= 100 else { throw HTTPAPIError(description: "a key name is 1 to 100 characters") }
        for pattern in key.eventPatterns where !EventCatalog.isValidPatternText(pattern) {
            throw HTTPAPIError(description: "'\(pattern)' is not an event pattern (words separated by dots, '*' one word, '#' any)")
        }
        if let rate = key.ratePerSecond, rate <= 0 { throw HTTPAPIError(description: "--rate must be a positive number of requests per second") }
        let secret = Self.newSecret()
        let inserted = try await database.withConnection { connection in
            try await connection.execute("""
                INSERT INTO warren_api_keys (name, key_hash, event_patterns, admin, rate_per_second)
                VALUES (\(key.name), \(Self.hash(secret)), \(key.eventPatterns.joined(separator: " ")), \(key.admin), \(key.ratePerSecond))
                ON CONFLICT (name) DO NOTHING
                """)
        }
        guard inserted == 1 else { throw HTTPAPIError(description: "a key named '\(key.name)' exists already (names are never reused, even revoked)") }
        return secret
    }

    public func list() async throws -> [APIKey] {
        try await database.withConnection { connection in
            try await connection.query("""
                SELECT name, event_patterns, admin, rate_per_second, created_at, revoked_at FROM warren_api_keys ORDER BY name
                """).map(Self.key)
        }
    }

    /// Revokes a key at once: `revoked` false if there is no active key of that name;
    /// `announced` false if Redis could not be told (replicas then accept the key until
    /// their cached copies expire).
    public func revoke(_ name: String) async throws -> (revoked: Bool, announced: Bool) {
        let revoked = try await database.withConnection { connection in
            try await connection.execute("UPDATE warren_api_keys SET revoked_at = now() WHERE name = \(name) AND revoked_at IS NULL")
        } == 1
        guard revoked else { return (false, true) }
        return (true, await announceChange())
    }

    /// Tells every process to forget its cached keys; false if Redis could not be told
    /// (then replicas may accept the revoked key until their cached copies expire).
    @discardableResult
    public func announceChange() async -> Bool {
        await shared?.invalidate(namespace: Self.cacheNamespace) ?? true
    }

    /// The active key whose secret hashes to `hash` (`APIKeyStore.hash`), or nil.
    public func authenticate(hash: String) async throws -> APIKey? {
        guard let cache else { return try await lookUp(hash: hash) }
        return try await cache.value(for: hash) { try await lookUp(hash: hash) }
    }

    private func lookUp(hash: String) async throws -> APIKey? {
        try await database.withConnection { connection in
            try await connection.query("""
                SELECT name, event_patterns, admin, rate_per_second, created_at, revoked_at FROM warren_api_keys
                WHERE key_hash = \(hash) AND revoked_at IS NULL
                """).first.map(Self.key)
        }
    }

    private static func key(_ row: PostgresRow) throws -> APIKey {
        var key = APIKey(
            name: try row.decode(String.self, "name"),
            eventPatterns: try row.decode(String.self, "event_patterns").split(separator: " ").map(String.init),
            admin: try row.decode(Bool.self, "admin"), ratePerSecond: try row.decode(Int32?.self, "rate_per_second").map { Int($0) })
        key.createdAt = try row.decode(Date?.self, "created_at")
        key.revokedAt = try row.decode(Date?.self, "revoked_at")
        return key
    }
}

/// Webhook ids already published (`warren_webhook_receipts`): a sender's retry of one it
/// already delivered is answered without publishing again.
public struct WebhookReceipts: Sendable {
    let database: PostgresPool

    public init(database: PostgresPool) {
        self.database = database
    }

    public func seen(source: String, id: String) async throws -> Bool {
        try await database.withConnection { connection in
            try await connection.query("SELECT 1 FROM warren_webhook_receipts WHERE source = \(source) AND webhook_id = \(id)")
        }.isEmpty == false
    }

    /// Recorded after the broker confirmed the event.
    public func record(source: String, id: String, eventID: String) async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("""
                INSERT INTO warren_webhook_receipts (source, webhook_id, event_id) VALUES (\(source), \(id), \(eventID))
                ON CONFLICT DO NOTHING
                """)
        }
    }

    /// The user of a Stripe customer Warren created (payments.customers).
    func userForStripeCustomer(_ customer: String) async throws -> String? {
        try await database.withConnection { connection in
            try await connection.query("SELECT user_id FROM payment_customers WHERE provider = 'stripe' AND customer_id = \(customer)")
        }.first.map { try $0.decode(String.self, "user_id") }
    }
}
