import CLibPQ
import Foundation
import Glibc

/// Opening a libpq connection, for every type that owns one: the caller's URI or conninfo
/// on top of Warren's defaults for what it leaves unset, so that no libpq call waits
/// forever on a server that is gone or a lock that is never released.
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
    /// Blocking: call it on the connection's own thread.
    static func open(_ conninfo: String) -> OpaquePointer? {
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
