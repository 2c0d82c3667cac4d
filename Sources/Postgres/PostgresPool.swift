import Logging
import ServiceLifecycle
import Locking

/// Up to `maxConnections` connections, opened on first need, each leased to one task at a time.
///
/// A task that finds every connection busy waits in line (no polling) and is cancellable while
/// it waits. A connection that died is closed when returned and its slot reopened on demand;
/// one left inside a transaction is rolled back before the next lease.
public final class PostgresPool: Sendable {
    private enum Lease {
        case connection(PostgresConnection)
        /// A slot to open a new connection in.
        case slot
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Lease, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Idle, leased and being opened.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    private let conninfo: String
    private let maxConnections: Int
    private let acquireTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    /// A task that finds every connection leased waits at most `acquireTimeout` for one,
    /// then fails with `acquireTimeout` (a connection held too long or leaked should
    /// show as an error, not as a hang).
    public init(conninfo: String, maxConnections: Int = 4, acquireTimeout: Duration = .seconds(30), logger: Logger) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        self.conninfo = conninfo
        self.maxConnections = maxConnections
        self.acquireTimeout = acquireTimeout
        self.logger = logger
    }

    /// Leases a connection to `body` and takes it back when `body` returns or throws.
    public func withConnection<T>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let connection = try await lease()
        do {
            // On the connection's own thread: its statements run in place, no thread switch each.
            let result = try await withTaskExecutorPreference(connection.executor) { try await body(connection) }
            await release(connection)
            return result
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Closes idle connections and fails waiting and future leases; leased connections close
    /// when returned.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: Self.closedError) }
        for connection in idle { await connection.close() }
    }

    private func lease() async throws -> PostgresConnection {
        enum Next {
            case use(PostgresConnection)
            case open
            case wait
            case fail(PostgresError)
        }
        let next: Next = state.withLock { state in
            if state.closed { return .fail(Self.closedError) }
            if let connection = state.idle.popLast() { return .use(connection) }
            if state.open < maxConnections {
                state.open += 1
                return .open
            }
            return .wait
        }
        switch next {
        case .use(let connection): return connection
        case .open: return try await open()
        case .fail(let error): throw error
        case .wait:
            switch try await waitInLine(atMost: acquireTimeout) {
            case .connection(let connection): return connection
            case .slot: return try await open()
            }
        }
    }

    /// `waitInLine`, given up after `timeout`. A lease granted while the timer fires is
    /// used, never dropped.
    private func waitInLine(atMost timeout: Duration) async throws -> Lease {
        enum Finished: Sendable {
            case waiter(Result<Lease, any Error>)
            case timer(fired: Bool)
        }
        var waited: Result<Lease, any Error>?
        var timerFired = false
        await withTaskGroup(of: Finished.self) { group in
            group.addTask {
                do { return .waiter(.success(try await self.waitInLine())) } catch { return .waiter(.failure(error)) }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timer(fired: true)
                } catch {
                    return .timer(fired: false)
                }
            }
            // Whichever finishes first cancels the other; the waiter always reports back.
            while let finished = await group.next() {
                switch finished {
                case .waiter(let result): waited = result
                case .timer(let fired): timerFired = fired
                }
                group.cancelAll()
            }
        }
        switch waited! {
        case .success(let lease):
            return lease
        case .failure(let error) where error is CancellationError && timerFired && !Task.isCancelled:
            throw PostgresError(
                code: .acquireTimeout, message: "no connection of the pool (\(maxConnections)) was free within \(timeout)")
        case .failure(let error):
            throw error
        }
    }

    private func waitInLine() async throws -> Lease {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let cancelled = state.withLock { state in
                    // Checked under the lock the handler takes, so no cancellation slips between.
                    if Task.isCancelled { return true }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Opens a connection in a slot already counted in `open`; gives the slot back on failure.
    private func open() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(to: conninfo, logger: logger)
        } catch {
            freeSlot()
            throw error
        }
    }

    private func release(_ connection: PostgresConnection) async {
        guard !connection.isBroken, await connection.resetForReuse() else {
            logger.debug("postgres pool replacing a broken connection")
            await connection.close()
            freeSlot()
            return
        }
        let (waiter, closeIt): (Waiter?, Bool) = state.withLock { state in
            if state.closed {
                state.open -= 1
                return (nil, true)
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), false) }
            state.idle.append(connection)
            return (nil, false)
        }
        if closeIt { await connection.close() }
        waiter?.continuation.resume(returning: .connection(connection))
    }

    /// A slot is free: hand it to the first waiter, or lower the count.
    private func freeSlot() {
        let waiter = state.withLock { state -> Waiter? in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.open -= 1
            return nil
        }
        waiter?.continuation.resume(returning: .slot)
    }

    private static let closedError = PostgresError(code: .closed, message: "the pool was closed")
}

extension PostgresPool: Service {
    /// Keeps the pool open until graceful shutdown or cancellation, then closes it. In a
    /// `ServiceGroup`, list it before the services that use it, so it closes after them.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
