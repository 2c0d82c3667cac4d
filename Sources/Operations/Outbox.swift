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
}
