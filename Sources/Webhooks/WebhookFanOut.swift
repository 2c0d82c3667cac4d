import Consumers
import Logging
import Postgres
import SharedState
import WarrenCore

/// The `webhooks.delivery` consumer (bound to `#`): in the consumer's transaction, each
/// event becomes one pending delivery per enabled subscription whose patterns match it,
/// stored with the event's JSON; the dispatcher sends them. An event no subscription
/// wants leaves nothing. Redelivered events add nothing (the inbox, and the primary keys).
///
/// The enabled subscriptions (ids and patterns, never secrets) come from a cache keyed by
/// `warren_webhook_subscriptions_version` (migration 0011, bumped by a trigger on every
/// change that matters): each batch reads that one row, and the list is loaded from
/// PostgreSQL once per version, for every process together when Redis is configured. A
/// change is seen by the next batch, whoever made it, with or without Redis.
public struct WebhookFanOut: ConsumerModule {
    public let name = "webhooks.delivery"
    /// The namespace of the cache of enabled subscriptions (`SharedStore`).
    public static let cacheNamespace = "webhook-subscriptions"

    /// One enabled subscription as the fan-out matches it.
    public struct Enabled: Codable, Sendable, Equatable {
        public var id: String
        public var patterns: [String]
    }

    let cache: SharedCache<[Enabled]>

    /// `shared`: Redis, to load each version once for every process (without it, once per process).
    public init(shared: SharedStore? = nil) {
        // Keyed by version: an entry is never stale, the TTLs only free memory.
        let store = shared ?? SharedStore(configuration: nil, logger: Logger(label: "warren.webhooks"))
        cache = store.cache([Enabled].self, namespace: Self.cacheNamespace, ttl: .seconds(3600), localTTL: .seconds(3600))
    }

    static func enabled(on connection: PostgresConnection) async throws -> [Enabled] {
        try await connection.query("""
            SELECT id, array_to_string(event_patterns, ' ') AS event_patterns FROM warren_webhook_subscriptions WHERE enabled
            """).map { row in
            Enabled(id: try row.decode(String.self, "id"), patterns: try row.decode(String.self, "event_patterns").split(separator: " ").map(String.init))
        }
    }

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        let version = try await connection.query("SELECT version FROM warren_webhook_subscriptions_version").first?.decode(Int64.self, "version") ?? 0
        let subscriptions = try await cache.value(for: "v\(version)") { try await Self.enabled(on: connection) } ?? []
        var fanned: [(subscription: String, event: String)] = []
        var stored: [CloudEvent] = []
        for event in events {
            let matching = subscriptions.filter { subscription in subscription.patterns.contains { EventCatalog.matches(pattern: $0, type: event.type) } }
            guard !matching.isEmpty else { continue }
            stored.append(event)
            fanned += matching.map { ($0.id, event.id) }
        }
        guard !fanned.isEmpty else { return [:] }
        _ = try await connection.execute("""
            INSERT INTO warren_webhook_events (event_id, event_type, payload, traceparent)
            SELECT * FROM unnest(\(PostgresArrayLiteral.text(stored.map(\.id)))::text[], \(PostgresArrayLiteral.text(stored.map(\.type)))::text[],
                                 \(PostgresArrayLiteral.text(stored.map { String(decoding: $0.jsonBytes(), as: UTF8.self) }))::text[],
                                 \(PostgresArrayLiteral.text(stored.map(\.traceparent)))::text[])
            ON CONFLICT (event_id) DO NOTHING
            """)
        // Joined with the subscriptions as they are now: one deleted or disabled by a
        // transaction that committed after the version was read gets no delivery (and no
        // foreign-key error).
        _ = try await connection.execute("""
            INSERT INTO warren_webhook_deliveries (subscription_id, event_id, webhook_id)
            SELECT u.subscription_id, u.event_id, u.webhook_id
            FROM unnest(\(PostgresArrayLiteral.text(fanned.map(\.subscription)))::text[], \(PostgresArrayLiteral.text(fanned.map(\.event)))::text[],
                        \(PostgresArrayLiteral.text(fanned.map { WebhookSigning.webhookID(subscription: $0.subscription, event: $0.event) }))::text[])
                AS u(subscription_id, event_id, webhook_id)
            JOIN warren_webhook_subscriptions s ON s.id = u.subscription_id AND s.enabled
            ON CONFLICT DO NOTHING
            """)
        _ = try await connection.execute("SELECT pg_notify(\(WebhookDeliveries.notificationChannel), '')")
        return [:]
    }
}
