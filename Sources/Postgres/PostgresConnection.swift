import Blocking
import CLibPQ
import Dispatch
import Glibc
import Logging
import Locking
import struct Synchronization.Atomic

/// One libpq connection. Every libpq call runs on the connection's own thread, never on
/// Swift's cooperative pool; the API is `async`.
///
/// Lease it to one task at a time (``PostgresPool`` does). If the server goes away, the
/// failing call throws ``PostgresError/Code-swift.struct/connectionLost`` and the next call
/// reconnects (`PQreset`), except inside a ``transaction(isolation:_:)``, whose work is gone
/// with the session.
public final class PostgresConnection: @unchecked Sendable {
    // `@unchecked Sendable` is sound because the thread-confined state (`libpq`,
    // `transactionDepth`, `statements`) is read and written only inside jobs on `thread`, which runs one
    // job at a time in order on a single OS thread; when the last reference goes, no job
    // can be pending (each holds a strong reference to `self`) and `libpq` finishes itself.
    // Everything else is immutable or atomic.
    private let thread: BlockingThread
    private let libpq: LibPQConnection
    /// Open transaction plus savepoints; see PostgresConnection+Transaction.swift.
    var transactionDepth = 0
    /// Statements with binds are prepared once per session (thread-confined).
    private var statements = PreparedStatements()
    private let broken = Atomic<Bool>(false)
    /// `afterCommit` actions, one frame per open transaction level (see
    /// PostgresConnection+Transaction.swift).
    let commitActions = Mutex<[[@Sendable () -> Void]]>([])
    /// What `interrupt()` needs to end the current job (one `interruptible` run on the
    /// thread, which may make several libpq calls, e.g. a commit and its rollback).
    private struct Job {
        /// Numbers the jobs; `interrupted` names the one that must not block any longer.
        var number: UInt64 = 0
        var running = false
        var interrupted: UInt64 = 0
        /// Started by a task already cancelled: it may finish a quick call, never reconnect.
        var cancelledAtStart = false
        /// A duplicate of the socket of the call in flight (-1 when none): made and closed
        /// on the connection's thread around each call, under the lock. Being our own
        /// descriptor, it is never reused for something else while set, even if libpq
        /// closes its own during the call; shutting it down ends the connection's socket.
        var socket: Int32 = -1
    }
    private let job = Mutex(Job())
    /// Numbers jobs when they are asked for (not when they start), so that a cancellation
    /// can name the job it belongs to even while that job waits behind another.
    private let jobs = Atomic<UInt64>(0)
    /// How long a job started by an already-cancelled task may take (a quick rollback on
    /// a healthy network) before it is interrupted like a call whose task is cancelled.
    static let cancelledJobBound: Duration = .seconds(2)
    let logger: Logger

    private init(thread: BlockingThread, libpq: LibPQConnection, logger: Logger) {
        self.thread = thread
        self.libpq = libpq
        self.logger = logger
    }

    /// Opens a connection from a libpq URI (`postgresql://user:pass@host:5432/db`) or a
    /// `key=value` conninfo string, with `LibPQConnect.defaults` (timeouts) for what it
    /// leaves unset. The session is set to UTC, ISO dates, hex bytea and UTF-8, which the
    /// decoders rely on.
    public static func connect(to conninfo: String, logger: Logger) async throws -> PostgresConnection {
        let thread = BlockingThread(name: "warren.postgres")
        let notices = LibPQNotices(logger: logger)
        let libpq = try await thread.run {
            let libpq = try LibPQConnection.open(conninfo, notices: notices)
            do {
                try Self.configureSession(libpq)
            } catch {
                libpq.finish()
                throw error
            }
            return libpq
        }
        var logger = logger
        logger[metadataKey: "postgres.backend_pid"] = "\(libpq.backendPID)"
        logger.debug("postgres connection opened")
        return PostgresConnection(thread: thread, libpq: libpq, logger: logger)
    }

    /// Rows of a query whose interpolations are bind parameters.
    public func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await run(query.sql, query.binds, prepared: !query.plansEachRun) { $0.rows() }
    }

    /// Rows of `sql` with `$1`, `$2`… bound to `binds` (nil is NULL).
    public func query(_ sql: String, _ binds: [PostgresValue?]) async throws -> [PostgresRow] {
        try await run(sql, binds) { $0.rows() }
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await run(query.sql, query.binds, prepared: !query.plansEachRun) { $0.affectedRows }
    }

    @discardableResult
    public func execute(_ sql: String, _ binds: [PostgresValue?]) async throws -> Int {
        try await run(sql, binds) { $0.affectedRows }
    }

    /// The connection's thread as a task executor: a task that prefers it runs beside the
    /// connection, and each statement executes in place instead of as a hop to the thread
    /// and back (`PostgresPool.withConnection` lends connections this way).
    public var executor: any TaskExecutor { thread }

    /// True once a call found the connection dead and it has not been re-established yet.
    /// The pool replaces such connections instead of handing them out again.
    public var isBroken: Bool { broken.load(ordering: .relaxed) }

    /// Closes the connection; later calls throw ``PostgresError/Code-swift.struct/closed``.
    public func close() async {
        _ = try? await thread.run { [libpq] in libpq.finish() }
    }

    // MARK: Work on the connection's thread

    private func run<T: Sendable>(
        _ sql: String,
        _ binds: [PostgresValue?],
        prepared: Bool = true,
        _ read: @escaping @Sendable (borrowing LibPQResult) -> T
    ) async throws -> T {
        try await interruptible { [self] in
            let result = try execute(sql, binds, prepared: prepared)
            return read(result)
        }
    }

    /// Runs `body` on the connection's thread as one job that the task's cancellation
    /// interrupts (`interrupt()`). A job started by a task that is already cancelled gets
    /// `cancelledJobBound` before it is interrupted, so a quick rollback still goes through
    /// but nothing blocks on a partition for long; so does one whose task is cancelled while
    /// it waits for the thread. A cancellation only ever interrupts its own task's job.
    private func interruptible<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let number = jobs.wrappingAdd(1, ordering: .relaxed).newValue
        let cancelled = Atomic<Bool>(Task.isCancelled)
        return try await withTaskCancellationHandler {
            try await thread.run { [self] in
                // Read under the lock that `onCancel` takes after setting the flag: either
                // the flag is seen here, or `onCancel` finds this job running.
                let cancelledBefore = job.withLock {
                    $0.number = number
                    $0.running = true
                    $0.cancelledAtStart = cancelled.load(ordering: .relaxed)
                    return $0.cancelledAtStart
                }
                defer {
                    let interrupted = job.withLock { job in
                        job.running = false
                        return job.interrupted == number
                    }
                    // Its socket was shut down, maybe after the last reply came in: the
                    // connection must not be handed out again as if it were sound.
                    if interrupted { broken.store(true, ordering: .relaxed) }
                }
                if cancelledBefore {
                    let milliseconds = Int(Self.cancelledJobBound / .milliseconds(1))
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
                        interrupt(job: number)
                    }
                }
                return try body()
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
            interrupt(job: number)
        }
    }

    /// True while a statement is on its way to or from the server (for tests).
    var hasCallInFlight: Bool { job.withLock { $0.socket >= 0 } }

    /// How many jobs were asked for so far, running, queued or done (for tests).
    var jobsAskedFor: UInt64 { jobs.load(ordering: .relaxed) }

    /// Ends the current job now, whatever the server or the network does: the socket of
    /// its call in flight is shut down, so the blocked read or write returns, the call
    /// fails with `connectionLost` and the session (and any transaction, which the server
    /// rolls back) is gone; a later call of the same job fails at once the same way, and
    /// the next job reconnects. Called when the task waiting for the job is cancelled —
    /// e.g. when the grace period of a shutdown ends during a network partition, where a
    /// cancel request (`PQcancel`) could not reach the server either.
    public func interrupt() { interrupt(job: nil) }

    /// Interrupts the running job if it is `number` (any job for nil).
    private func interrupt(job number: UInt64?) {
        job.withLock { job in
            guard job.running, number == nil || job.number == number else { return }
            job.interrupted = job.number
            if job.socket >= 0 { _ = Glibc.shutdown(job.socket, Int32(SHUT_RDWR)) }
        }
    }

    /// Runs `sql` with the simple query protocol: several statements allowed, no binds. For
    /// trusted SQL only (migration files, transaction control).
    func executeScript(_ sql: String, context: String) async throws {
        try await interruptible { [self] in
            _ = try withLiveConnection(context: context, query: sql) { pgconn in
                PQexec(pgconn, sql)
            }
        }
    }

    /// Runs `body` on the connection's thread, where it may use the thread-confined members
    /// below, as one job the task's cancellation interrupts.
    func onThread<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await interruptible { [self] in try body(self) }
    }

    /// Thread-confined, like `transactionDepth`.
    var isAlive: Bool { libpq.isConnected }

    var transactionStatus: PGTransactionStatusType { libpq.transactionStatus }

    private func execute(_ sql: String, _ binds: [PostgresValue?], prepared: Bool) throws -> LibPQResult {
        var parameters = try BindParameters(binds)
        defer { parameters.deallocate() }
        do {
            return try withLiveConnection(context: nil, query: sql) { pgconn in
                var failure: OpaquePointer?
                if prepared, let name = statements.name(for: sql, types: parameters.types, on: pgconn, failure: &failure) {
                    return PQexecPrepared(pgconn, name, Int32(binds.count), parameters.values, parameters.lengths, parameters.formats, 0)
                }
                if let failure { return failure }
                return PQexecParams(
                    pgconn, sql, Int32(binds.count), parameters.types, parameters.values, parameters.lengths,
                    parameters.formats, 0)
            }
        } catch let error as PostgresError {
            statements.failed(error)
            throw error
        }
    }

    /// The one place that talks to the server: reconnects a dead connection (outside a
    /// transaction), runs `call`, and turns a failed result into a ``PostgresError``.
    func withLiveConnection(
        context: String?,
        query: String?,
        _ call: (OpaquePointer) -> OpaquePointer?
    ) throws -> LibPQResult {
        let pgconn = try libpq.live(context: context)
        // libpq takes C strings: a NUL would silently cut the statement short.
        guard !(query?.utf8.contains(0) ?? false) else {
            throw PostgresError(code: .invalidValue, message: "the SQL text contains a NUL byte", context: context)
        }
        if !libpq.isConnected {
            // An interrupted job does not reconnect: that could block as long as the call did.
            guard !job.withLock({ $0.interrupted == $0.number || $0.cancelledAtStart }) else {
                throw PostgresError(code: .connectionLost, message: "the connection is lost and its task was cancelled: no reconnect", context: context)
            }
            guard transactionDepth == 0 else {
                throw PostgresError(
                    code: .connectionLost,
                    message: "the connection was lost inside a transaction; the transaction is gone",
                    context: context
                )
            }
            logger.info("postgres connection reconnecting")
            statements.forgetAll()
            do {
                try libpq.reset()
                try Self.configureSession(libpq)
            } catch {
                broken.store(true, ordering: .relaxed)
                throw error
            }
            broken.store(false, ordering: .relaxed)
        }
        let socket = libpq.socket
        job.withLock { job in
            job.socket = socket >= 0 ? dup(socket) : -1
            // Interrupted between two calls of the job: this one must not block either.
            if job.interrupted == job.number, job.running, job.socket >= 0 { _ = Glibc.shutdown(job.socket, Int32(SHUT_RDWR)) }
        }
        let answer = call(pgconn)
        job.withLock { job in
            if job.socket >= 0 { Glibc.close(job.socket) }
            job.socket = -1
        }
        guard let pointer = answer else {
            throw PostgresError(code: failureCode(), message: libpq.errorMessage, context: context, query: query)
        }
        let result = LibPQResult(pointer: pointer)
        guard result.succeeded else {
            throw result.error(code: failureCode(), fallbackMessage: libpq.errorMessage, context: context, query: query)
        }
        return result
    }

    /// After a failed call: `connectionLost` if the connection died with it, else `queryFailed`.
    private func failureCode() -> PostgresError.Code {
        guard !libpq.isConnected else { return .queryFailed }
        broken.store(true, ordering: .relaxed)
        logger.warning("postgres connection lost")
        return .connectionLost
    }

    /// Session settings the text decoders depend on; rerun after every reconnect.
    private static func configureSession(_ libpq: LibPQConnection) throws {
        try libpq.execute(
            "SET TIME ZONE 'UTC'; SET datestyle TO 'ISO, MDY'; SET bytea_output TO 'hex'; SET client_encoding TO 'UTF8'",
            failure: .connectionFailed, context: "session setup")
    }
}
