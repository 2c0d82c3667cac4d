import Postgres

/// The inbox: `(consumer, message_id)` recorded in the same transaction as the effects,
/// so a redelivered or duplicated message is recognised and acked without effect.
enum Inbox {
    /// Records the ids in the inbox and returns those that were not there yet: one
    /// statement, probing the primary key once per id. An id recorded by a concurrent
    /// transaction waits for that transaction and then counts as seen, and an id named
    /// twice in `ids` is returned once.
    static func claim(consumer: String, ids: [String], on connection: PostgresConnection) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            INSERT INTO warren_inbox (consumer, message_id) SELECT \(consumer), unnest(\(PostgresArrayLiteral.text(ids))::text[])
            ON CONFLICT DO NOTHING RETURNING message_id
            """)
        return Set(try rows.map { try $0.decode(String.self, "message_id") })
    }

    /// The ids already recorded, without claiming any (for calling modules, whose effects
    /// happen before the inbox is written).
    static func seen(consumer: String, ids: [String], on connection: PostgresConnection) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        let rows = try await connection.query(
            "SELECT message_id FROM warren_inbox WHERE consumer = \(consumer) AND message_id = ANY(\(PostgresArrayLiteral.text(ids))::text[])")
        return Set(try rows.map { try $0.decode(String.self, "message_id") })
    }

    /// Takes back claims for events that were not applied (they failed and leave for a
    /// delay tier or the dead-letter queue, and must be processed when they come back).
    static func release(consumer: String, ids: [String], on connection: PostgresConnection) async throws {
        guard !ids.isEmpty else { return }
        try await connection.execute(
            """
            DELETE FROM warren_inbox i USING unnest(\(PostgresArrayLiteral.text(ids))::text[]) AS m(id)
            WHERE i.consumer = \(consumer) AND i.message_id = m.id
            """)
    }
}
