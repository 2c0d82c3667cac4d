import CLibPQ

/// A `PGresult*`, cleared exactly once when this value goes away.
struct LibPQResult: ~Copyable {
    let pointer: OpaquePointer

    deinit { PQclear(pointer) }

    var succeeded: Bool {
        let status = PQresultStatus(pointer)
        return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY
    }

    /// The command tag, e.g. `INSERT 0 1` or `ROLLBACK`.
    var commandStatus: String { String(cString: PQcmdStatus(pointer)) }

    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/COPY; 0 for other commands.
    var affectedRows: Int { Int(String(cString: PQcmdTuples(pointer))) ?? 0 }

    /// Copies every row out, so nothing refers to libpq memory after `PQclear`.
    func rows() -> [PostgresRow] {
        let columnCount = PQnfields(pointer)
        let columns = (0..<columnCount).map { index in
            PostgresColumn(
                name: String(cString: PQfname(pointer, index)),
                type: PostgresDataType(oid: UInt32(PQftype(pointer, index)))
            )
        }
        return (0..<PQntuples(pointer)).map { row in
            PostgresRow(
                columns: columns,
                cells: (0..<columnCount).map { column in
                    PQgetisnull(pointer, row, column) == 1
                        ? nil : String(cString: PQgetvalue(pointer, row, column))
                }
            )
        }
    }

    /// The server's error fields (`PQresultErrorField`).
    func error(code: PostgresError.Code, fallbackMessage: String, context: String?, query: String?) -> PostgresError {
        func field(_ name: Character) -> String? {
            guard let value = PQresultErrorField(pointer, Int32(name.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        return PostgresError(
            code: code,
            message: field("M") ?? fallbackMessage,
            sqlState: field("C"),
            detail: field("D"),
            hint: field("H"),
            constraint: field("n"),
            schema: field("s"),
            table: field("t"),
            column: field("c"),
            context: context,
            query: query
        )
    }
}
