import Foundation
import Operations
import Postgres
import WarrenCore

/// Deliveries in PostgreSQL (`warren_webhook_deliveries`, migration 0009): claimed by a
/// dispatcher with a lease, then recorded with their attempt. Pure SQL, no HTTP.
public enum WebhookDeliveries {
    /// The LISTEN/NOTIFY channel that wakes dispatchers when deliveries become due.
    public static let notificationChannel = "warren_webhooks"

    /// A delivery a dispatcher holds: due again only once its lease ran out.
    struct Claimed: Sendable {
        var subscriptionID: String
        var eventID: String
        var webhookID: String
        /// Counts this one.
        var attempt: Int
        var payload: String
        var traceparent: String?
        var url: String
        /// Current first, then the previous one while a rotation overlaps.
        var secrets: [String]
    }

    /// Leases up to `limit` due deliveries of enabled subscriptions, at most `free[id]`
    /// (else `perSubscription`) of each subscription, oldest due first. A lease pushes
    /// `next_attempt_at` past `lease`: a dispatcher that dies leaves the row pending and
    /// due again then. Rows another dispatcher leased meanwhile are skipped (the update
    /// re-checks that the row is still due).
    static func claim(on connection: PostgresConnection, limit: Int, perSubscription: Int, free: [String: Int], lease: Duration) async throws
        -> [Claimed]
    {
        let full = free.filter { $0.value <= 0 }.map(\.key)
        let partial = free.filter { $0.value > 0 }
        let rows = try await connection.query("""
            WITH due AS (
                SELECT d.subscription_id, d.event_id, d.next_attempt_at
                FROM warren_webhook_deliveries d JOIN warren_webhook_subscriptions s ON s.id = d.subscription_id AND s.enabled
                WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                  AND NOT (d.subscription_id = ANY(\(PostgresArrayLiteral.text(full))::text[]))
                ORDER BY d.next_attempt_at
                LIMIT \(limit * 4)
            ), ranked AS (
                SELECT due.*, row_number() OVER (PARTITION BY due.subscription_id ORDER BY due.next_attempt_at, due.event_id) AS n FROM due
            ), picked AS (
                SELECT r.subscription_id, r.event_id FROM ranked r
                LEFT JOIN unnest(\(PostgresArrayLiteral.text(Array(partial.keys)))::text[],
                                 \(PostgresArrayLiteral.bigint(partial.values.map { Int64($0) }))::bigint[]) AS f(subscription_id, free)
                  ON f.subscription_id = r.subscription_id
                WHERE r.n <= COALESCE(f.free, \(perSubscription))
                ORDER BY r.next_attempt_at
                LIMIT \(limit)
            )
            UPDATE warren_webhook_deliveries d
            SET next_attempt_at = now() + make_interval(secs => \(Double(lease.components.seconds))), attempts = d.attempts + 1
            FROM picked p, warren_webhook_subscriptions s, warren_webhook_events e
            WHERE d.subscription_id = p.subscription_id AND d.event_id = p.event_id AND s.id = d.subscription_id AND s.enabled
              AND e.event_id = d.event_id AND d.status = 'pending' AND d.next_attempt_at <= now()
            RETURNING d.subscription_id, d.event_id, d.webhook_id, d.attempts, e.payload, e.traceparent, s.url, s.secret,
                CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret
            """)
        return try rows.map { row in
            Claimed(
                subscriptionID: try row.decode(String.self, "subscription_id"), eventID: try row.decode(String.self, "event_id"),
                webhookID: try row.decode(String.self, "webhook_id"), attempt: Int(try row.decode(Int32.self, "attempts")),
                payload: try row.decode(String.self, "payload"), traceparent: try row.decode(String?.self, "traceparent"),
                url: try row.decode(String.self, "url"),
                secrets: [try row.decode(String.self, "secret")] + [try row.decode(String?.self, "previous_secret")].compactMap { $0 })
        }
    }

    /// One finished attempt and what the policy decided.
    struct Finished: Sendable {
        var claimed: Claimed
        var attemptedAt: Date
        var latency: Duration
        var result: AttemptResult
        var decision: DeliveryDecision
        var finishedAt = Date()

        var latencyMilliseconds: Double { Double(latency.components.seconds) * 1000 + Double(latency.components.attoseconds) / 1e15 }

        var statusCode: Int? { if case .response(let status, _) = result { status } else { nil } }

        var error: String? {
            switch result {
            case .response(let status, _) where (200...299).contains(status): nil
            case .response(410, _): "410 Gone: the subscription was disabled"
            case .response(let status, _): "HTTP \(status)"
            case .timedOut: "no response within the timeout"
            case .failed(let reason): reason
            }
        }

        var outcome: String {
            switch decision {
            case .delivered: "delivered"
            case .retry: "retry"
            case .failed: "failed"
            case .gone: "gone"
            }
        }
    }

    /// Records attempts in one transaction: the log, each delivery's new state, each
    /// subscription's failure record; disables subscriptions that answered 410 or have
    /// failed for `policy.disableAfter`, and for each one disabled enqueues the event
    /// `webhook.endpoint.disabled` in the outbox (published by the outbox relay). Returns
    /// the ids disabled.
    static func record(_ finished: [Finished], policy: DeliveryPolicy, on connection: PostgresConnection) async throws -> [String] {
        guard !finished.isEmpty else { return [] }
        return try await connection.transaction { connection in
            _ = try await connection.execute("""
                INSERT INTO warren_webhook_attempts (subscription_id, event_id, attempt, attempted_at, status_code, latency_ms, outcome, error)
                SELECT * FROM unnest(
                    \(PostgresArrayLiteral.text(finished.map(\.claimed.subscriptionID)))::text[],
                    \(PostgresArrayLiteral.text(finished.map(\.claimed.eventID)))::text[],
                    \(PostgresArrayLiteral.bigint(finished.map { Int64($0.claimed.attempt) }))::int[],
                    \(PostgresArrayLiteral.text(finished.map { RFC3339.format($0.attemptedAt) }))::timestamptz[],
                    \(PostgresArrayLiteral.bigint(finished.map { $0.statusCode.map(Int64.init) }))::int[],
                    \(PostgresArrayLiteral.text(finished.map { String($0.latencyMilliseconds) }))::float8[],
                    \(PostgresArrayLiteral.text(finished.map(\.outcome)))::text[],
                    \(PostgresArrayLiteral.text(finished.map(\.error)))::text[])
                """)
            _ = try await connection.execute("""
                UPDATE warren_webhook_deliveries d SET status = u.status, last_error = u.error,
                    next_attempt_at = COALESCE(u.next_attempt_at, d.next_attempt_at),
                    finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE now() END
                FROM unnest(
                    \(PostgresArrayLiteral.text(finished.map(\.claimed.subscriptionID)))::text[],
                    \(PostgresArrayLiteral.text(finished.map(\.claimed.eventID)))::text[],
                    \(PostgresArrayLiteral.text(finished.map { Self.status($0.decision) }))::text[],
                    \(PostgresArrayLiteral.text(finished.map { Self.nextAttempt($0) }))::timestamptz[],
                    \(PostgresArrayLiteral.text(finished.map(\.error)))::text[]) AS u(subscription_id, event_id, status, next_attempt_at, error)
                WHERE d.subscription_id = u.subscription_id AND d.event_id = u.event_id
                """)
            // Each subscription's latest answer in this batch decides whether it is failing.
            var latest: [String: Finished] = [:]
            for item in finished where latest[item.claimed.subscriptionID].map({ $0.finishedAt <= item.finishedAt }) ?? true {
                latest[item.claimed.subscriptionID] = item
            }
            let succeeded = latest.values.filter { $0.decision == .delivered }.map(\.claimed.subscriptionID)
            let failing = latest.values.filter { $0.decision != .delivered }
            _ = try await connection.execute("""
                UPDATE warren_webhook_subscriptions SET failing_since = NULL
                WHERE id = ANY(\(PostgresArrayLiteral.text(succeeded))::text[]) AND failing_since IS NOT NULL
                """)
            _ = try await connection.execute("""
                UPDATE warren_webhook_subscriptions SET failing_since = u.since
                FROM unnest(\(PostgresArrayLiteral.text(failing.map(\.claimed.subscriptionID)))::text[],
                            \(PostgresArrayLiteral.text(failing.map { RFC3339.format($0.attemptedAt) }))::timestamptz[]) AS u(id, since)
                WHERE warren_webhook_subscriptions.id = u.id AND failing_since IS NULL
                """)
            let gone = failing.filter { $0.decision == .gone }.map(\.claimed.subscriptionID)
            let days = Double(policy.disableAfter.components.seconds)
            let disabled = try await connection.query("""
                UPDATE warren_webhook_subscriptions SET enabled = false, updated_at = now(),
                    disabled_reason = CASE WHEN id = ANY(\(PostgresArrayLiteral.text(gone))::text[]) THEN 'the endpoint answered 410 Gone'
                        ELSE 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END
                WHERE enabled AND (id = ANY(\(PostgresArrayLiteral.text(gone))::text[])
                    OR (id = ANY(\(PostgresArrayLiteral.text(failing.map(\.claimed.subscriptionID)))::text[])
                        AND failing_since <= now() - make_interval(secs => \(days))))
                RETURNING id, url, disabled_reason, failing_since, updated_at
                """)
            for row in disabled {
                let id = try row.decode(String.self, "id")
                let reason = try row.decode(String?.self, "disabled_reason") ?? "disabled"
                let at = try row.decode(Date.self, "updated_at")
                var data: [String: JSONValue] = ["subscription_id": .string(id), "url": .string(try row.decode(String.self, "url")), "reason": .string(reason)]
                data["failing_since"] = try row.decode(Date?.self, "failing_since").map { .string(RFC3339.format($0)) } ?? .null
                let event = CloudEvent(
                    type: "webhook.endpoint.disabled", source: "/warren/webhooks", data: .object(data),
                    id: "\(id):disabled:\(Int64(at.timeIntervalSince1970 * 1000))", time: at, subject: id)
                try await Outbox.enqueue(event, on: connection)
            }
            return try disabled.map { try $0.decode(String.self, "id") }
        }
    }

    private static func status(_ decision: DeliveryDecision) -> String {
        switch decision {
        case .delivered: "delivered"
        case .retry: "pending"
        case .failed, .gone: "failed"
        }
    }

    private static func nextAttempt(_ finished: Finished) -> String? {
        guard case .retry(let after) = finished.decision else { return nil }
        return RFC3339.format(finished.finishedAt.addingTimeInterval(Double(after.components.seconds) + Double(after.components.attoseconds) / 1e18))
    }

    /// Deletes finished deliveries, their attempts and events no delivery needs, older than `retention`.
    static func prune(olderThan retention: Duration, on connection: PostgresConnection) async throws {
        let seconds = Double(retention.components.seconds)
        _ = try await connection.execute(
            "DELETE FROM warren_webhook_attempts WHERE attempted_at < now() - make_interval(secs => \(seconds))")
        _ = try await connection.execute("""
            DELETE FROM warren_webhook_deliveries WHERE status <> 'pending' AND finished_at < now() - make_interval(secs => \(seconds))
            """)
        _ = try await connection.execute("""
            DELETE FROM warren_webhook_events e WHERE received_at < now() - make_interval(secs => \(seconds))
              AND NOT EXISTS (SELECT 1 FROM warren_webhook_deliveries d WHERE d.event_id = e.event_id)
            """)
    }
}
