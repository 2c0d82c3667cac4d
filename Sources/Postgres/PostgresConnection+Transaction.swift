import CLibPQ
import Logging

extension PostgresConnection {
    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` when it returns, `ROLLBACK` when
    /// it throws (the error is rethrown). Nested calls use savepoints, so an inner failure
    /// rolls back only the inner work.
    ///
    /// If the body swallows a statement error, PostgreSQL has already aborted the transaction;
    /// the commit then throws rather than reporting success.
    public func transaction<T>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let level = try await begin()
        commitActions.withLock { $0.append([]) }
        let result: T
        do {
            result = try await body(self)
        } catch {
            _ = commitActions.withLock { $0.removeLast() }
            await rollback(level)
            throw error
        }
        // A failed commit drops them: its outcome is unknown.
        let actions = commitActions.withLock { $0.removeLast() }
        try await commit(level)
        // A savepoint's actions wait for the transaction around it; the outermost commit runs them all.
        let outermost = commitActions.withLock { frames in
            guard !frames.isEmpty else { return true }
            frames[frames.count - 1] += actions
            return false
        }
        if outermost { for action in actions { action() } }
        return result
    }

    /// Runs `action` once the transaction this connection is in has committed, right after
    /// `COMMIT` returned: never if it rolls back (or a savepoint around the call does), nor
    /// if the commit fails, whose outcome is then unknown. Outside a transaction it runs at
    /// once. For what must see only committed work, such as handing new rows to another task.
    public func afterCommit(_ action: @escaping @Sendable () -> Void) {
        let deferred = commitActions.withLock { frames in
            guard !frames.isEmpty else { return false }
            frames[frames.count - 1].append(action)
            return true
        }
        if !deferred { action() }
    }

    private func begin() async throws -> Int {
        try await onThread { connection in
            let level = connection.transactionDepth + 1
            let sql = level == 1 ? "BEGIN" : "SAVEPOINT \(Self.savepoint(level))"
            _ = try connection.withLiveConnection(context: sql, query: sql) { PQexec($0, sql) }
            connection.transactionDepth = level
            return level
        }
    }

    private func commit(_ level: Int) async throws {
        try await onThread { connection in
            // Whatever happens below, this level is over: the server ends or rolls it back.
            defer { connection.transactionDepth = level - 1 }
            if level == 1 {
                let result = try connection.withLiveConnection(context: "COMMIT", query: "COMMIT") { PQexec($0, "COMMIT") }
                // COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK.
                guard result.commandStatus != "ROLLBACK" else {
                    throw PostgresError(
                        code: .queryFailed,
                        message: "the transaction was aborted by an earlier error and was rolled back",
                        context: "COMMIT"
                    )
                }
            } else {
                let sql = "RELEASE SAVEPOINT \(Self.savepoint(level))"
                do {
                    _ = try connection.withLiveConnection(context: sql, query: sql) { PQexec($0, sql) }
                } catch {
                    connection.rollbackOnThread(level)
                    throw error
                }
            }
        }
    }

    /// Best effort: a failed rollback is logged, and the body's error is what the caller sees.
    private func rollback(_ level: Int) async {
        _ = try? await onThread { connection in connection.rollbackOnThread(level) }
    }

    private func rollbackOnThread(_ level: Int) {
        defer { transactionDepth = level - 1 }
        // A dead connection took the transaction with it: nothing to roll back.
        guard isAlive else { return }
        let sql =
            level == 1
            ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT \(Self.savepoint(level)); RELEASE SAVEPOINT \(Self.savepoint(level))"
        do {
            _ = try withLiveConnection(context: sql, query: sql) { PQexec($0, sql) }
        } catch {
            logger.warning("postgres rollback failed", metadata: ["postgres.error": "\(error)"])
        }
    }

    /// Leaves a connection as a fresh lease expects it: no transaction left open by the last user.
    /// Returns false if it is not worth keeping.
    func resetForReuse() async -> Bool {
        (try? await onThread { connection -> Bool in
            guard connection.isAlive else { return false }
            if connection.transactionStatus != PQTRANS_IDLE {
                connection.transactionDepth = 0
                connection.logger.warning("postgres connection returned inside a transaction; rolling back")
                _ = try connection.withLiveConnection(context: "ROLLBACK", query: "ROLLBACK") { PQexec($0, "ROLLBACK") }
            }
            return true
        }) ?? false
    }

    private static func savepoint(_ level: Int) -> String { "warren_savepoint_\(level)" }
}
