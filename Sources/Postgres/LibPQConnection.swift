import CLibPQ
import Foundation
import Glibc

/// The one owner of a libpq connection (`PGconn`): ``PostgresConnection`` and
/// ``PostgresListener`` each hold one. It opens the connection with `LibPQConnect`'s
/// defaults and checks it, runs the simple-protocol statements both need, resets it, and
/// finishes it exactly once (`finish()`, or when the last reference goes).
///
/// Not thread-safe: libpq allows one caller at a time. Its holder confines it to its own
/// `BlockingThread` (every call is a job there), which is why it may cross into that
/// thread's jobs (`@unchecked Sendable`) but is never used from two at once.
final class LibPQConnection: @unchecked Sendable {
    private(set) var pointer: OpaquePointer?
    /// Receives the server's notices; kept alive until after `PQfinish`.
    private let notices: LibPQNotices?

    private init(pointer: OpaquePointer, notices: LibPQNotices?) {
        self.pointer = pointer
        self.notices = notices
    }

    deinit { finish() }

    /// Connects (blocking), or throws `connectionFailed` with libpq's message; a half-made
    /// connection is finished before the error is thrown.
    static func open(_ conninfo: String, notices: LibPQNotices? = nil, context: String? = nil) throws -> LibPQConnection {
        guard let pointer = LibPQConnect.open(conninfo) else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection", context: context)
        }
        notices?.install(on: pointer)
        let connection = LibPQConnection(pointer: pointer, notices: notices)
        guard connection.isConnected else {
            throw PostgresError(code: .connectionFailed, message: connection.errorMessage, context: context)
        }
        return connection
    }

    /// False once finished, or when libpq found the connection dead.
    var isConnected: Bool { pointer.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// libpq's last error message, without its trailing newline.
    var errorMessage: String {
        guard let pointer else { return "the connection was closed" }
        var message = String(cString: PQerrorMessage(pointer))
        while message.last?.isWhitespace == true { message.removeLast() }
        return message
    }

    var socket: Int32 { pointer.map(PQsocket) ?? -1 }
    var backendPID: Int32 { pointer.map(PQbackendPID) ?? 0 }
    var transactionStatus: PGTransactionStatusType { pointer.map(PQtransactionStatus) ?? PQTRANS_UNKNOWN }

    /// Reconnects with the same parameters (blocking); throws `connectionFailed` if that fails.
    func reset(context: String? = nil) throws {
        PQreset(try live(context: context))
        guard isConnected else { throw PostgresError(code: .connectionFailed, message: errorMessage, context: context) }
    }

    /// Runs trusted SQL with the simple query protocol (no binds), for session setup and
    /// `LISTEN`; a failure throws `failure` (or the server's SQLSTATE error).
    func execute(_ sql: String, failure code: PostgresError.Code, context: String) throws {
        guard let answer = PQexec(try live(context: context), sql) else {
            throw PostgresError(code: code, message: errorMessage, context: context)
        }
        let result = LibPQResult(pointer: answer)
        guard result.succeeded else {
            throw result.error(code: code, fallbackMessage: errorMessage, context: context, query: sql)
        }
    }

    /// `name` quoted as an SQL identifier by libpq.
    func quotedIdentifier(_ name: String) throws -> String {
        guard let pointer, let quoted = PQescapeIdentifier(pointer, name, name.utf8.count) else {
            throw PostgresError(code: .invalidValue, message: "cannot quote the identifier \(name)")
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// The connection, or `closed` once it was finished.
    func live(context: String?) throws -> OpaquePointer {
        guard let pointer else { throw PostgresError(code: .closed, message: "the connection was closed", context: context) }
        return pointer
    }

    /// Closes the connection; later calls fail with `closed`. Safe to call twice.
    func finish() {
        guard let pointer else { return }
        self.pointer = nil
        withExtendedLifetime(notices) { PQfinish(pointer) }
    }
}

/// Warren's defaults under the caller's URI or conninfo, for what it leaves unset, so that
/// no libpq call waits forever on a server that is gone or a lock that is never released.
enum LibPQConnect {
    /// Set unless the conninfo sets the same keyword (its value then wins whole; `options`
    /// too), its libpq environment variable is set, or a service file is used. Documented
    /// in the README's configuration section. (A pooler that refuses the `options`
    /// startup parameter, such as PgBouncer without `ignore_startup_parameters`, needs
    /// `PGOPTIONS=` or `options=` in the URL.)
    static let defaults: KeyValuePairs<String, String> = [
        // Seconds to establish the connection.
        "connect_timeout": "10",
        // A peer that vanished without a reset is noticed in about a minute while idle…
        "keepalives": "1",
        "keepalives_idle": "30",
        "keepalives_interval": "10",
        "keepalives_count": "3",
        // …and while data waits unacknowledged (milliseconds).
        "tcp_user_timeout": "60000",
        // Server-side limits for each session: one statement, one lock wait, and a
        // transaction left idle (a crashed or partitioned client's locks are released).
        "options": "-c statement_timeout=60s -c lock_timeout=10s -c idle_in_transaction_session_timeout=60s",
        "application_name": "warren",
    ]

    /// libpq's environment variables for the defaults that have one: explicit keywords
    /// would beat them, so a default steps aside when its variable is set.
    static let environmentVariables = ["connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS", "application_name": "PGAPPNAME"]

    /// The defaults that apply: none when a service file is named (its settings would lose
    /// to explicit keywords too), none whose environment variable is set.
    static func applicableDefaults(conninfo: String, environment: [String: String]) -> [(key: String, value: String)] {
        if environment["PGSERVICE"] != nil || conninfo.contains("service=") { return [] }
        return defaults.filter { environmentVariables[$0.key].map { environment[$0] == nil } ?? true }
    }

    /// The connection libpq made (check `PQstatus`), or nil if it could not allocate one.
    /// Blocking. Only ``LibPQConnection/open(_:notices:context:)`` calls it.
    fileprivate static func open(_ conninfo: String) -> OpaquePointer? {
        let defaults = applicableDefaults(conninfo: conninfo, environment: ProcessInfo.processInfo.environment)
        // Entries before an expanded `dbname` are overridden by the conninfo's own fields.
        let keywords = defaults.map(\.key) + ["dbname"]
        let values = defaults.map(\.value) + [conninfo]
        return withCStringArray(keywords) { keywords in
            withCStringArray(values) { values in PQconnectdbParams(keywords, values, 1) }
        }
    }

    /// A NULL-terminated array of C strings that lives for the duration of `body`.
    private static func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
        let copies = strings.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        let pointers = copies.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
