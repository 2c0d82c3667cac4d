/// SQL whose interpolations become bind parameters:
/// `"SELECT * FROM users WHERE id = \(id) AND name = \(name)"` sends
/// `... id = $1 AND name = $2` with two binds. Only ``PostgresEncodable`` values (and
/// optionals of them, as NULL) can be interpolated; identifiers go through
/// `\(identifier: name)`, which quotes them.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation {
    public var sql: String
    public var binds: [PostgresValue?]
    /// Run unprepared (see `plannedEachRun()`).
    public var plansEachRun = false

    /// This statement, planned afresh by the server on every run, from the table sizes of
    /// that moment, instead of prepared once per session. A prepared statement soon runs
    /// a cached generic plan, made once; for a table whose size swings (a queue emptied
    /// and refilled) a plan made while it was empty keeps scanning all of it as it grows,
    /// until the next `ANALYZE`. Costs a parse and a plan per run.
    public func plannedEachRun() -> PostgresQuery {
        var query = self
        query.plansEachRun = true
        return query
    }

    /// `sql` is sent as written: it must use `$n` placeholders, never spliced-in values.
    public init(unsafeSQL sql: String, binds: [PostgresValue?] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeSQL: stringInterpolation.sql, binds: stringInterpolation.binds)
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresValue?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            appendBind(value.postgresValue)
        }

        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            appendBind(value?.postgresValue)
        }

        /// SQL text fixed at compile time, such as a column list several queries share:
        /// a `StaticString` cannot hold a value read at run time.
        public mutating func appendInterpolation(sql fragment: StaticString) {
            sql += fragment.description
        }

        /// A table or column name, double-quoted with embedded quotes doubled.
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresQuery.quoteIdentifier(identifier)
        }

        private mutating func appendBind(_ value: PostgresValue?) {
            binds.append(value)
            sql += "$\(binds.count)"
        }
    }

    static func quoteIdentifier(_ name: String) -> String {
        "\"" + String(name.flatMap { $0 == "\"" ? ["\"", "\""] : [$0] }) + "\""
    }
}
