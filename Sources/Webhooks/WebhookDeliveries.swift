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
        /// The subscription has failed since its last success (it gets fewer slots).
        var failing: Bool
        /// Why its secrets could not be opened (`SecretSealer`): the attempt fails with this
        /// instead of being sent unsigned.
        var unreadableSecret: String? = nil
    }

    /// Leases up to `limit` due deliveries of enabled subscriptions, each subscription's
    /// oldest due first: up to `perSubscription` held by a healthy subscription and
    /// `perFailingSubscription` by one that is failing, counting what it already holds
    /// (`holding`, by subscription id). A lease pushes `next_attempt_at` past `lease` and counts the
    /// attempt: a dispatcher that dies leaves the row pending and due again then. Rows
    /// another dispatcher is leasing are skipped (`SKIP LOCKED`), never waited for. One
    /// index probe per enabled subscription (`warren_webhook_deliveries_due`).
    static func claim(
        on connection: PostgresConnection, limit: Int, perSubscription: Int, perFailingSubscription: Int, holding: [String: Int], lease: Duration,
        sealer: SecretSealer = .clear
    ) async throws -> [Claimed] {
        let rows = try await connection.query(PostgresQuery("""
            WITH subscriptions AS (
                SELECT s.id, s.failing_since IS NOT NULL AS failing,
                       GREATEST(0, (CASE WHEN s.failing_since IS NULL THEN \(perSubscription) ELSE \(perFailingSubscription) END)
                                   - COALESCE(f.in_flight, 0)) AS free
                FROM warren_webhook_subscriptions s
                LEFT JOIN unnest(\(PostgresArrayLiteral.text(Array(holding.keys)))::text[],
                                 \(PostgresArrayLiteral.bigint(holding.values.map { Int64($0) }))::bigint[]) AS f(subscription_id, in_flight)
                  ON f.subscription_id = s.id
                WHERE s.enabled
            ), picked AS (
                SELECT d.subscription_id, d.event_id, d.next_attempt_at, s.failing FROM subscriptions s
                CROSS JOIN LATERAL (
                    SELECT d.subscription_id, d.event_id, d.next_attempt_at FROM warren_webhook_deliveries d
                    WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                    ORDER BY d.next_attempt_at
                    LIMIT s.free
                    FOR UPDATE SKIP LOCKED
                ) d
                WHERE s.free > 0
                ORDER BY d.next_attempt_at
                LIMIT \(limit)
            )
            UPDATE warren_webhook_deliveries d
            SET next_attempt_at = now() + make_interval(secs => \(lease.inSeconds)), attempts = d.attempts + 1
            FROM picked p, warren_webhook_subscriptions s, warren_webhook_events e
            WHERE d.subscription_id = p.subscription_id AND d.event_id = p.event_id AND s.id = d.subscription_id
              AND e.event_id = d.event_id AND d.finished_at IS NULL
            RETURNING d.subscription_id, d.event_id, d.webhook_id, d.attempts, e.payload, e.traceparent, s.url, s.secret,
                CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret, p.failing
            """).plannedEachRun())
        var opener = SecretOpener(sealer)
        return try rows.map { row in
            let subscription = try row.decode(String.self, "subscription_id")
            let (secrets, unreadable) = opener.open(
                current: try row.decode(String.self, "secret"), previous: try row.decode(String?.self, "previous_secret"), subscription: subscription)
            return Claimed(
                subscriptionID: subscription, eventID: try row.decode(String.self, "event_id"),
                webhookID: try row.decode(String.self, "webhook_id"), attempt: Int(try row.decode(Int32.self, "attempts")),
                payload: try row.decode(String.self, "payload"), traceparent: try row.decode(String?.self, "traceparent"),
                url: try row.decode(String.self, "url"), secrets: secrets, failing: try row.decode(Bool.self, "failing"),
                unreadableSecret: unreadable)
        }
    }

    /// Gives back leases never used (a dispatcher shutting down with deliveries queued):
    /// due now, the attempt not counted. Fenced like `record`.
    static func release(_ claimed: [Claimed], on connection: PostgresConnection) async throws {
        _ = try await connection.execute(PostgresQuery("""
            UPDATE warren_webhook_deliveries d SET next_attempt_at = now(), attempts = d.attempts - 1
            FROM unnest(\(PostgresArrayLiteral.text(claimed.map { $0.subscriptionID }))::text[],
                        \(PostgresArrayLiteral.text(claimed.map { $0.eventID }))::text[],
                        \(PostgresArrayLiteral.bigint(claimed.map { Int64($0.attempt) }))::int[]) AS u(subscription_id, event_id, attempt)
            WHERE d.subscription_id = u.subscription_id AND d.event_id = u.event_id AND d.finished_at IS NULL AND d.attempts = u.attempt
            """).plannedEachRun())
        _ = try await connection.execute("SELECT pg_notify(\(notificationChannel), '')")
    }

    /// One finished attempt and what the policy decided.
    struct Finished: Sendable {
        var claimed: Claimed
        var attemptedAt: Date
        var latency: Duration
        var decision: DeliveryDecision
        var finishedAt = Date()
        /// The HTTP status, if the endpoint answered.
        let statusCode: Int?
        /// What went wrong, for the log; nil when delivered.
        let error: String?

        init(claimed: Claimed, attemptedAt: Date, latency: Duration, result: AttemptResult, decision: DeliveryDecision) {
            self.claimed = claimed
            self.attemptedAt = attemptedAt
            self.latency = latency
            self.decision = decision
            (statusCode, error) = Self.describe(result)
        }

        /// Kept out of line: the Swift 6.3 optimizer crashed ("ownership error") when it
        /// inlined a switch over `AttemptResult` into `record`.
        @inline(never)
        private static func describe(_ result: AttemptResult) -> (Int?, String?) {
            switch result {
            case .response(let status, _):
                if (200...299).contains(status) { return (status, nil) }
                return (status, status == 410 ? "410 Gone: the subscription was disabled" : "HTTP \(status)")
            case .timedOut: return (nil, "no response within the timeout")
            case .failed(let reason): return (nil, reason)
            }
        }

        var latencyMilliseconds: Double { latency.inSeconds * 1000 }

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
        // Everything bound is computed first, as plain arrays (the Swift 6.3 optimizer
        // crashed on key paths into `finished` inside the transaction's closure).
        let subscriptions = finished.map { $0.claimed.subscriptionID }
        let eventIDs = finished.map { $0.claimed.eventID }
        let errors = finished.map { $0.error }
        let attempts = PostgresArrayLiteral.bigint(finished.map { Int64($0.claimed.attempt) })
        let attemptedAt = PostgresArrayLiteral.text(finished.map { RFC3339.format($0.attemptedAt) })
        let statusCodes = PostgresArrayLiteral.bigint(finished.map { $0.statusCode.map { Int64($0) } })
        let latencies = PostgresArrayLiteral.text(finished.map { String($0.latencyMilliseconds) })
        let outcomes = PostgresArrayLiteral.text(finished.map { $0.outcome })
        let statuses = PostgresArrayLiteral.text(finished.map { Self.status($0.decision) })
        let nextAttempts = PostgresArrayLiteral.text(finished.map { Self.nextAttempt($0) })
        // Each subscription's latest answer in this batch decides whether it is failing.
        var latest: [String: Int] = [:]
        for index in finished.indices {
            let id = subscriptions[index]
            if let seen = latest[id], finished[seen].finishedAt > finished[index].finishedAt { continue }
            latest[id] = index
        }
        var succeededIDs: [String] = [], failingIDs: [String] = [], failingSince: [String] = [], goneIDs: [String] = []
        for (id, index) in latest {
            switch finished[index].decision {
            case .delivered: succeededIDs.append(id)
            case .gone:
                goneIDs.append(id)
                fallthrough
            case .retry, .failed:
                failingIDs.append(id)
                failingSince.append(RFC3339.format(finished[index].attemptedAt))
            }
        }
        let succeeded = PostgresArrayLiteral.text(succeededIDs)
        let failing = PostgresArrayLiteral.text(failingIDs)
        let since = PostgresArrayLiteral.text(failingSince)
        let gone = PostgresArrayLiteral.text(goneIDs)
        let disableAfter = policy.disableAfter.inSeconds
        // The log, each delivery's new state and the successes' failure records in one
        // statement: one round trip, atomic by itself. Only a batch with failures needs
        // more (failure records, disabling, the outbox), in a transaction with it.
        // Planned on every run: a cached plan made while the table was small joins it by a
        // sequential scan, which grows with the table (`PostgresQuery.plannedEachRun`).
        let logged = PostgresQuery("""
            WITH u AS (
                SELECT * FROM unnest(\(PostgresArrayLiteral.text(subscriptions))::text[], \(PostgresArrayLiteral.text(eventIDs))::text[],
                    \(attempts)::int[], \(attemptedAt)::timestamptz[], \(statusCodes)::int[], \(latencies)::float8[], \(outcomes)::text[],
                    \(PostgresArrayLiteral.text(errors))::text[], \(statuses)::text[], \(nextAttempts)::timestamptz[])
                    AS u(subscription_id, event_id, attempt, attempted_at, status_code, latency_ms, outcome, error, status, next_attempt_at)
            ), logged AS (
                INSERT INTO warren_webhook_attempts (subscription_id, event_id, attempt, attempted_at, status_code, latency_ms, outcome, error)
                SELECT u.subscription_id, u.event_id, u.attempt, u.attempted_at, u.status_code, u.latency_ms, u.outcome, u.error FROM u
                -- a subscription deleted while its request was in flight has no log any more
                WHERE EXISTS (SELECT 1 FROM warren_webhook_subscriptions s WHERE s.id = u.subscription_id)
            ), settled AS (
                -- Fenced: only the lease this attempt held. A delivery leased again meanwhile
                -- (this one outlived its lease) or retried by hand keeps its newer state.
                -- Pending as `finished_at IS NULL` (migration 0014): one primary-key probe
                -- per row, never a walk of the pending index.
                UPDATE warren_webhook_deliveries d SET status = u.status, last_error = u.error,
                    next_attempt_at = COALESCE(u.next_attempt_at, d.next_attempt_at),
                    finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE now() END
                FROM u
                WHERE d.subscription_id = u.subscription_id AND d.event_id = u.event_id AND d.finished_at IS NULL AND d.attempts = u.attempt
            )
            UPDATE warren_webhook_subscriptions SET failing_since = NULL WHERE id = ANY(\(succeeded)::text[]) AND failing_since IS NOT NULL
            """).plannedEachRun()
        guard !failingIDs.isEmpty else {
            _ = try await connection.execute(logged)
            return []
        }
        return try await connection.transaction { connection in
            _ = try await connection.execute(logged)
            _ = try await connection.execute("""
                UPDATE warren_webhook_subscriptions SET failing_since = u.since
                FROM unnest(\(failing)::text[], \(since)::timestamptz[]) AS u(id, since)
                WHERE warren_webhook_subscriptions.id = u.id AND failing_since IS NULL
                """)
            let disabled = try await connection.query("""
                UPDATE warren_webhook_subscriptions SET enabled = false, updated_at = now(),
                    disabled_reason = CASE WHEN id = ANY(\(gone)::text[]) THEN 'the endpoint answered 410 Gone'
                        ELSE 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END
                WHERE enabled AND (id = ANY(\(gone)::text[])
                    OR (id = ANY(\(failing)::text[]) AND failing_since <= now() - make_interval(secs => \(disableAfter))))
                RETURNING id, url, disabled_reason, failing_since, updated_at
                """)
            var ids: [String] = []
            for row in disabled {
                let id = try row.decode(String.self, "id")
                try await Outbox.enqueue(try Self.disabledEvent(row), on: connection)
                ids.append(id)
            }
            return ids
        }
    }

    /// `webhook.endpoint.disabled` for a row `record` disabled.
    private static func disabledEvent(_ row: PostgresRow) throws -> CloudEvent {
        let id = try row.decode(String.self, "id")
        let at = try row.decode(Date.self, "updated_at")
        var data: [String: JSONValue] = [
            "subscription_id": .string(id), "url": .string(try row.decode(String.self, "url")),
            "reason": .string(try row.decode(String?.self, "disabled_reason") ?? "disabled"),
        ]
        data["failing_since"] = try row.decode(Date?.self, "failing_since").map { .string(RFC3339.format($0)) } ?? .null
        return CloudEvent(
            type: "webhook.endpoint.disabled", source: "/warren/webhooks", data: .object(data),
            id: "\(id):disabled:\(Int64(at.timeIntervalSince1970 * 1000))", time: at, subject: id)
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
        return RFC3339.format(finished.finishedAt.addingTimeInterval(after.inSeconds))
    }

    /// Deletes finished deliveries, their attempts and events no delivery needs, older than `retention`.
    static func prune(olderThan retention: Duration, on connection: PostgresConnection) async throws {
        let seconds = retention.inSeconds
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

    /// Refreshes the planner's statistics of the deliveries and their events
    /// (`StatisticsRefresh` says when) and returns the rows the deliveries table holds by
    /// them. A role that does not own the tables gets a warning from the server, not an
    /// error: then autovacuum alone keeps them.
    static func analyze(on connection: PostgresConnection) async throws -> Int {
        _ = try await connection.execute("ANALYZE warren_webhook_deliveries, warren_webhook_events")
        let rows = try await connection.query(
            "SELECT GREATEST(reltuples, 0)::bigint AS rows FROM pg_class WHERE oid = 'warren_webhook_deliveries'::regclass")
        return Int(try rows.first?.decode(Int64.self, "rows") ?? 0)
    }
}

extension Duration {
    /// Seconds with their fraction, for SQL intervals and `Date` arithmetic.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
