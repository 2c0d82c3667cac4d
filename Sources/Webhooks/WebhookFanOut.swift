import Consumers
import Postgres
import SharedState
import WarrenCore

/// The `webhooks.delivery` consumer (bound to `#`): in the consumer's transaction, each
/// event becomes one pending delivery per enabled subscription whose patterns match it,
/// stored with the event's JSON; the dispatcher sends them. An event no subscription
/// wants leaves nothing. Redelivered events add nothing (the inbox, and the primary keys).
///
/// With Redis (`WARREN_REDIS_URL`), the enabled subscriptions (ids and patterns, never
/// secrets) are read from a shared cache that every change to a subscription invalidates,
/// instead of from PostgreSQL for every batch.
public struct WebhookFanOut: ConsumerModule {
    public let name = "webhooks.delivery"
    /// The namespace of the cache of enabled subscriptions (`SharedStore`).
    public static let cacheNamespace = "webhook-subscriptions"

    /// One enabled subscription as the fan-out matches it.
    public struct Enabled: Codable, Sendable, Equatable {
        public var id: String
        public var patterns: [String]
    }

    let cache: SharedCache<[Enabled]>?

    /// `shared`: where the enabled subscriptions are cached (read every batch: no local
    /// copy, so a subscription created before an event was published is always seen).
    public init(shared: SharedStore? = nil) {
        cache = shared?.cache([Enabled].self, namespace: Self.cacheNamespace, localTTL: .zero)
    }

    static func enabled(on connection: PostgresConnection) async throws -> [Enabled] {
        try await connection.query("""
            SELECT id, array_to_string(event_patterns, ' ') AS event_patterns FROM warren_webhook_subscriptions WHERE enabled
            """).map { row in
            Enabled(id: try row.decode(String.self, "id"), patterns: try row.decode(String.self, "event_patterns").split(separator: " ").map(String.init))
        }
    }

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        let subscriptions: [Enabled]
        if let cache, let cached = try await cache.value(for: "enabled", load: { try await Self.enabled(on: connection) }) {
            subscriptions = cached
        } else {
            subscriptions = try await Self.enabled(on: connection)
        }
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
        _ = try await connection.execute("""
            INSERT INTO warren_webhook_deliveries (subscription_id, event_id, webhook_id)
            SELECT * FROM unnest(\(PostgresArrayLiteral.text(fanned.map(\.subscription)))::text[], \(PostgresArrayLiteral.text(fanned.map(\.event)))::text[],
                                 \(PostgresArrayLiteral.text(fanned.map { WebhookSigning.webhookID(subscription: $0.subscription, event: $0.event) }))::text[])
            ON CONFLICT DO NOTHING
            """)
        _ = try await connection.execute("SELECT pg_notify(\(WebhookDeliveries.notificationChannel), '')")
        return [:]
    }
}
