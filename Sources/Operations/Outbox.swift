import Foundation
import Messaging
import Postgres
import WarrenCore

/// The transactional outbox (table `warren_outbox`, migration 0005): an upstream service
/// writes its state change and the event in one transaction, and `warren outbox relay`
/// publishes the event once that transaction commits (never if it rolls back).
public enum Outbox {
    /// The LISTEN/NOTIFY channel that wakes relays; notifications are delivered at commit.
    public static let notificationChannel = "warren_outbox"

    /// Inserts `event` using `connection`, which should be inside the caller's open
    /// transaction (`connection.transaction { … }`), and notifies the relays.
    /// Throws `EventError` for an event that could never be published (`validateForAMQP`).
    /// The event's trace (`traceContext`, else `TraceContext.current`: the work enqueuing
    /// it) is stored with it and published with it.
    public static func enqueue(_ event: CloudEvent, on connection: PostgresConnection) async throws {
        try event.validateForAMQP()
        let json = String(decoding: event.jsonBytes(), as: UTF8.self)
        let trace = event.traceContext ?? TraceContext.current
        try await connection.execute("""
            INSERT INTO warren_outbox (event_id, event_type, event, traceparent, tracestate)
            VALUES (\(event.id), \(event.type), \(json), \(trace?.traceparent), \(trace?.state))
            """)
        try await connection.execute("SELECT pg_notify(\(notificationChannel), '')")
    }

    /// A row the relay set aside (`warren outbox parked`).
    public struct ParkedRow: Sendable, Encodable, Equatable {
        public var id: Int64
        public var eventID: String
        public var eventType: String
        public var createdAt: Date
        public var parkedAt: Date
        public var reason: String

        enum CodingKeys: String, CodingKey {
            case id, eventID = "event_id", eventType = "event_type", createdAt = "created_at", parkedAt = "parked_at", reason
        }
    }

    /// Parked rows, oldest first.
    public static func parked(limit: Int, in database: PostgresPool) async throws -> [ParkedRow] {
        try await database.withConnection { connection in
            try await connection.query("""
                SELECT id, event_id, event_type, created_at, parked_at, park_reason FROM warren_outbox
                WHERE parked_at IS NOT NULL AND published_at IS NULL ORDER BY id LIMIT \(Int64(limit))
                """)
        }.map { row in
            ParkedRow(
                id: try row.decode(Int64.self, at: 0), eventID: try row.decode(String.self, at: 1), eventType: try row.decode(String.self, at: 2),
                createdAt: try row.decode(Date.self, at: 3), parkedAt: try row.decode(Date.self, at: 4),
                reason: try row.decode(String?.self, at: 5) ?? "")
        }
    }

    /// Puts parked rows back in line (all of them when `ids` is nil) and wakes the relays;
    /// they keep their place (id order). Returns the ids re-queued; ids that are not
    /// parked are left alone.
    public static func retry(ids: [Int64]?, in database: PostgresPool) async throws -> [Int64] {
        try await database.withConnection { connection in
            try await connection.transaction { connection in
                let rows = try await connection.query("""
                    UPDATE warren_outbox SET parked_at = NULL, park_reason = NULL
                    WHERE parked_at IS NOT NULL AND published_at IS NULL
                      AND (\(ids == nil) OR id = ANY(\(PostgresArrayLiteral.bigint(ids ?? []))::bigint[])) RETURNING id
                    """)
                try await connection.execute("SELECT pg_notify(\(notificationChannel), '')")
                return try rows.map { try $0.decode(Int64.self, at: 0) }.sorted()
            }
        }
    }
}
