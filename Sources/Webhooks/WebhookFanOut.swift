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
    let handoff: DeliveryHandoff?

    /// `shared`: Redis, to load each version once for every process (without it, once per
    /// process). `handoff`: the dispatcher of this process, which gets what it has room
    /// for straight after the commit (without one, every delivery waits for a claim).
    public init(shared: SharedStore? = nil, handoff: DeliveryHandoff? = nil) {
        self.handoff = handoff
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
        let payloads = stored.map { String(decoding: $0.jsonBytes(), as: UTF8.self) }
        // Only an event stored now is handed off with the payload in hand (one stored
        // before, by an earlier delivery of the same id, is sent as stored, by a claim).
        let fresh = Set(
            try await connection.query("""
                INSERT INTO warren_webhook_events (event_id, event_type, payload, traceparent)
                SELECT * FROM unnest(\(PostgresArrayLiteral.text(stored.map(\.id)))::text[], \(PostgresArrayLiteral.text(stored.map(\.type)))::text[],
                                     \(PostgresArrayLiteral.text(payloads))::text[], \(PostgresArrayLiteral.text(stored.map(\.traceparent)))::text[])
                ON CONFLICT (event_id) DO NOTHING
                RETURNING event_id
                """).map { try $0.decode(String.self, "event_id") })
        let plan = handoff?.plan(fanned.map(\.subscription))
        let leased = fanned.indices.map { (plan?.leased[$0] ?? false) && fresh.contains(fanned[$0].event) }
        let lease = plan?.lease.inSeconds ?? 0
        // Joined with the subscriptions as they are now: one deleted or disabled by a
        // transaction that committed after the version was read gets no delivery (and no
        // foreign-key error). A delivery handed off is stored leased with its attempt
        // counted, as a claim leaves it; not one of a subscription that is failing.
        let rows = try await connection.query("""
            WITH u AS (
                SELECT * FROM unnest(\(PostgresArrayLiteral.text(fanned.map(\.subscription)))::text[], \(PostgresArrayLiteral.text(fanned.map(\.event)))::text[],
                                     \(PostgresArrayLiteral.text(fanned.map { WebhookSigning.webhookID(subscription: $0.subscription, event: $0.event) }))::text[],
                                     \(PostgresArrayLiteral.bool(leased))::bool[])
                    AS u(subscription_id, event_id, webhook_id, leased)
            ), inserted AS (
                INSERT INTO warren_webhook_deliveries (subscription_id, event_id, webhook_id, attempts, next_attempt_at)
                SELECT u.subscription_id, u.event_id, u.webhook_id, l.leased::int,
                       CASE WHEN l.leased THEN now() + make_interval(secs => \(lease)) ELSE now() END
                FROM u JOIN warren_webhook_subscriptions s ON s.id = u.subscription_id AND s.enabled
                CROSS JOIN LATERAL (SELECT u.leased AND s.failing_since IS NULL AS leased) l
                ON CONFLICT DO NOTHING
                RETURNING subscription_id, event_id, webhook_id, attempts
            )
            -- The url and secrets only of those handed over.
            SELECT i.subscription_id, i.event_id, i.webhook_id, i.attempts, s.url, s.secret,
                   CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret
            FROM inserted i LEFT JOIN warren_webhook_subscriptions s ON s.id = i.subscription_id AND i.attempts = 1
            """)
        let events = Dictionary(zip(stored.map(\.id), zip(payloads, stored.map(\.traceparent))), uniquingKeysWith: { first, _ in first })
        var handed: [DeliveryHandoff.Stored] = []
        var due = false
        for row in rows {
            guard try row.decode(Int32.self, "attempts") == 1, let (payload, traceparent) = events[try row.decode(String.self, "event_id")] else {
                due = true
                continue
            }
            handed.append(
                DeliveryHandoff.Stored(
                    subscriptionID: try row.decode(String.self, "subscription_id"), eventID: try row.decode(String.self, "event_id"),
                    webhookID: try row.decode(String.self, "webhook_id"), payload: payload, traceparent: traceparent,
                    url: try row.decode(String.self, "url"), secret: try row.decode(String.self, "secret"),
                    previousSecret: try row.decode(String?.self, "previous_secret")))
        }
        // Due deliveries wake the dispatchers to claim them; handed-off ones need no one.
        if due { _ = try await connection.execute("SELECT pg_notify(\(WebhookDeliveries.notificationChannel), '')") }
        if let handoff, !handed.isEmpty { connection.afterCommit { [handed] in handoff.deliver(handed) } }
        return [:]
    }
}
