import CLibPQ

/// The statements a session has prepared, by SQL text and parameter types: the second
/// time a statement runs it skips the server's parse and plan (`PQexecPrepared`), as a
/// hand-written libpq program would with `PQprepare`. Thread-confined to its connection.
///
/// Bounded: past `capacity` distinct statements (SQL built with varying text) the rest
/// run unprepared, so a session never accumulates statements without end. Forgotten when
/// the session is reset (a new session has none), and when the server reports that a
/// prepared statement's result changed shape (`PostgresError.isStalePreparedStatement`,
/// after a migration altered a table): that run failed, and the next prepares afresh.
struct PreparedStatements {
    static let capacity = 256

    private struct Key: Hashable {
        var sql: String
        var types: [Oid]
    }

    private var names: [Key: String] = [:]
    private var generation = 0
    private var counter = 0

    /// The name of the prepared statement for `sql`, preparing it on `pgconn` first if
    /// needed; nil when it cannot be prepared (no room: run it unprepared). A failed
    /// preparation returns its result as `failure`, to be reported as the statement's.
    mutating func name(for sql: String, types: [Oid], on pgconn: OpaquePointer, failure: inout OpaquePointer?) -> String? {
        let key = Key(sql: sql, types: types)
        if let name = names[key] { return name }
        guard names.count < Self.capacity else { return nil }
        counter += 1
        let name = "warren_\(generation)_\(counter)"
        let result = PQprepare(pgconn, name, sql, Int32(types.count), types)
        guard let result, PQresultStatus(result) == PGRES_COMMAND_OK else {
            failure = result
            return nil
        }
        PQclear(result)
        names[key] = name
        return name
    }

    /// The session is new: nothing is prepared on it.
    mutating func forgetAll() {
        names = [:]
        generation += 1
        counter = 0
    }

    /// After a statement failed: a prepared plan that no longer fits the table is dropped
    /// (by forgetting every name; new ones never collide with old).
    mutating func failed(_ error: PostgresError) {
        guard error.isStalePreparedStatement else { return }
        names = [:]
        generation += 1
    }
}
