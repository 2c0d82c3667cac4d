import Postgres

/// The inbox: `(consumer, message_id)` recorded in the same transaction as the effects,
/// so a redelivered or duplicated message is recognised and acked without effect.
enum Inbox {
    static func seen(consumer: String, ids: [String], on connection: PostgresConnection) async throws -> Set<String> {
        let rows = try await connection.query(
            "SELECT message_id FROM warren_inbox WHERE consumer = \(consumer) AND message_id = ANY(\(textArray(ids))::text[])")
        return Set(try rows.map { try $0.decode(String.self, "message_id") })
    }

    /// A plain INSERT: should another consumer have recorded an id meanwhile, the unique
    /// violation rolls this transaction back and the batch is seen as a duplicate next time.
    static func record(consumer: String, ids: [String], on connection: PostgresConnection) async throws {
        guard !ids.isEmpty else { return }
        try await connection.execute(
            "INSERT INTO warren_inbox (consumer, message_id) SELECT \(consumer), unnest(\(textArray(ids))::text[])")
    }

    /// A PostgreSQL array literal (`{"a","b\"c",NULL}`), bound as one text parameter: one
    /// round trip for the whole batch whatever its size. Built byte by byte: Foundation's
    /// `replacingOccurrences` cost more CPU per event than the rest of the batch's SQL.
    static func textArray(_ values: [String?]) -> String {
        var literal: [UInt8] = [UInt8(ascii: "{")]
        literal.reserveCapacity(values.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { literal.append(UInt8(ascii: ",")) }
            guard let value else {
                literal.append(contentsOf: "NULL".utf8)
                continue
            }
            literal.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { literal.append(UInt8(ascii: "\\")) }
                literal.append(byte)
            }
            literal.append(UInt8(ascii: "\""))
        }
        literal.append(UInt8(ascii: "}"))
        return String(decoding: literal, as: UTF8.self)
    }
}
