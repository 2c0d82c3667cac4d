import Blocking
import CLibPQ
import Glibc
import Logging

/// A dedicated connection that `LISTEN`s on one channel. `NOTIFY` arrives asynchronously
/// in libpq (`PQconsumeInput` + `PQnotifies`), which does not fit the request/response
/// ``PostgresConnection``; this owns its own libpq connection and thread instead.
///
/// Notifications only say "look now": payloads are not kept, and callers must still poll
/// at some interval, since a notification sent while the listener was reconnecting is gone.
public final class PostgresListener: @unchecked Sendable {
    // `@unchecked Sendable` is sound because `pgconn` is read and written only in jobs on
    // `thread` (one job at a time, on one OS thread) and in `deinit`, when no job can be
    // pending (each holds a strong reference to `self`). `channel` and `thread` are immutable.
    private let thread: BlockingThread
    private var pgconn: OpaquePointer?
    private let conninfo: String
    private let channel: String

    private init(thread: BlockingThread, conninfo: String, channel: String) {
        self.thread = thread
        self.conninfo = conninfo
        self.channel = channel
    }

    deinit {
        guard let pgconn else { return }
        let handle = UnsafeHandle(pointer: pgconn)
        thread.submit { PQfinish(handle.pointer) }
    }

    /// Connects and runs `LISTEN channel`. `channel` is quoted as an identifier.
    public static func listen(to conninfo: String, channel: String) async throws -> PostgresListener {
        let listener = PostgresListener(thread: BlockingThread(name: "warren.postgres.listen"), conninfo: conninfo, channel: channel)
        try await listener.thread.run { [listener] in try listener.connectOnThread() }
        return listener
    }

    /// Waits up to `timeout` for at least one notification and returns whether one came.
    /// Throws ``PostgresError/Code-swift.struct/connectionLost`` when the connection died;
    /// the next call reconnects and listens again.
    public func wait(timeout: Duration) async throws -> Bool {
        try await thread.run { [self] in
            if pgconn == nil || PQstatus(pgconn) != CONNECTION_OK { try connectOnThread() }
            guard let pgconn else { throw PostgresError(code: .closed, message: "the listener was closed") }
            if try drain(pgconn) { return true }
            var descriptor = pollfd(fd: PQsocket(pgconn), events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = poll(&descriptor, 1, milliseconds)
            guard ready > 0 else { return false }
            return try drain(pgconn)
        }
    }

    public func close() async {
        _ = try? await thread.run { [self] in
            if let pgconn { PQfinish(pgconn) }
            pgconn = nil
        }
    }

    // MARK: On the listener's thread

    private func connectOnThread() throws {
        if let pgconn { PQfinish(pgconn) }
        pgconn = nil
        guard let connection = LibPQConnect.open(conninfo) else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message, context: "LISTEN")
        }
        guard let quoted = PQescapeIdentifier(connection, channel, channel.utf8.count) else {
            PQfinish(connection)
            throw PostgresError(code: .invalidValue, message: "cannot quote the channel name", context: "LISTEN")
        }
        let sql = "LISTEN " + String(cString: quoted)
        PQfreemem(quoted)
        guard let pointer = PQexec(connection, sql) else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message, context: "LISTEN")
        }
        let result = LibPQResult(pointer: pointer)
        guard result.succeeded else {
            PQfinish(connection)
            throw result.error(code: .queryFailed, fallbackMessage: "LISTEN failed", context: "LISTEN", query: sql)
        }
        pgconn = connection
    }

    /// Reads what the socket has and frees every queued notification; true if there was one.
    private func drain(_ pgconn: OpaquePointer) throws -> Bool {
        guard PQconsumeInput(pgconn) == 1 else {
            throw PostgresError(code: .connectionLost, message: String(cString: PQerrorMessage(pgconn)), context: "LISTEN")
        }
        var received = false
        while let notification = PQnotifies(pgconn) {
            received = true
            PQfreemem(notification)
        }
        return received
    }
}
