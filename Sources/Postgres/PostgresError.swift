/// The one error type of the `Postgres` module.
///
/// `description` is safe to log: it never contains bind values, the server's `DETAIL`
/// (where PostgreSQL echoes key values: `Key (email)=(alice@example.com) already exists.`)
/// or the primary message of a data exception (SQLSTATE class 22, whose messages quote the
/// offending input). `debugDescription` (`String(reflecting:)`) has everything and may
/// contain personal data.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, from the client's point of view. Opaque so cases can be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Could not open (or reopen) a connection; `message` has libpq's reason.
        public static let connectionFailed = Code("connectionFailed")
        /// The connection died during the call. The statement may or may not have been
        /// applied; the next call reconnects, and the caller decides whether to retry.
        public static let connectionLost = Code("connectionLost")
        /// The server rejected the statement; see `sqlState`.
        public static let queryFailed = Code("queryFailed")
        /// A column could not be turned into the requested Swift type (or was NULL).
        public static let decoding = Code("decoding")
        /// A value cannot be sent (for example a string containing NUL).
        public static let invalidValue = Code("invalidValue")
        /// A migration file is malformed, changed after it was applied, or failed.
        public static let migration = Code("migration")
        /// The connection or pool was closed by its owner.
        public static let closed = Code("closed")
        /// Every connection of the pool stayed leased for the pool's acquire timeout.
        public static let acquireTimeout = Code("acquireTimeout")
    }

    public var code: Code
    /// The five-character SQLSTATE (`23505` for a unique violation), if the server sent one.
    public var sqlState: String?
    /// The server's primary message, libpq's message, or the client's own.
    public var message: String
    /// The server's DETAIL. Often quotes row values: never in `description`.
    public var detail: String?
    public var hint: String?
    public var constraint: String?
    public var schema: String?
    public var table: String?
    public var column: String?
    /// Where it happened, in Warren's terms: `BEGIN`, `migration 0002_x.sql`, a column name.
    public var context: String?
    /// The SQL text (placeholders only, never values). Kept out of `description` anyway.
    public var query: String?

    public init(
        code: Code,
        message: String,
        sqlState: String? = nil,
        detail: String? = nil,
        hint: String? = nil,
        constraint: String? = nil,
        schema: String? = nil,
        table: String? = nil,
        column: String? = nil,
        context: String? = nil,
        query: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.schema = schema
        self.table = table
        self.column = column
        self.context = context
        self.query = query
    }

    public var description: String {
        var parts = ["PostgresError(\(code)"]
        if let sqlState { parts.append("sqlState: \(sqlState)") }
        parts.append("message: \(messageIsSafe ? message : "<withheld: data exception messages quote input>")")
        if let constraint { parts.append("constraint: \(constraint)") }
        if let table { parts.append("table: \(table)") }
        if let column { parts.append("column: \(column)") }
        if let context { parts.append("context: \(context)") }
        return parts.joined(separator: ", ") + ")"
    }

    public var debugDescription: String {
        var parts = [description]
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let query { parts.append("query: \(query)") }
        return parts.joined(separator: "; ")
    }

    /// A statement prepared on the session no longer fits its table (a migration changed
    /// the columns it returns): this run failed, and running it again prepares it afresh
    /// (`PreparedStatements`), so callers retry it rather than treat it as the data's fault.
    public var isStalePreparedStatement: Bool {
        sqlState == "0A000" && message.contains("cached plan must not change result type")
    }

    /// SQLSTATE class 22 messages look like `invalid input syntax for type integer: "abc"`.
    private var messageIsSafe: Bool {
        !(sqlState?.hasPrefix("22") ?? false)
    }
}
