#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import Logging

/// One versioned SQL file: `0001_init.sql` is version 1, named `init`.
public struct PostgresMigration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let fileName: String
    public let sql: String
    /// SHA-256 of the file's bytes, lowercase hex.
    public let checksum: String
}

/// Applies `NNNN_name.sql` files from a directory in version order, each in its own
/// transaction, and records them (version, name, checksum, applied_at) in a table.
///
/// Running it again applies only new files. A file whose content changed after it was
/// applied stops the run before anything else is applied. Files run inside a transaction,
/// so they must not contain `BEGIN`/`COMMIT` or statements that cannot run in one
/// (`CREATE INDEX CONCURRENTLY`). Concurrent migrators serialize on an advisory lock.
public struct PostgresMigrator: Sendable {
    public let directory: String
    public let table: String
    private let logger: Logger

    /// `table` is a plain or schema-qualified identifier (`warren_migrations`, `ops.migrations`).
    public init(directory: String, table: String = "warren_migrations", logger: Logger) throws {
        let identifier = /[A-Za-z_][A-Za-z0-9_]*/
        guard table.split(separator: ".", omittingEmptySubsequences: false).count <= 2,
            table.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ $0.wholeMatch(of: identifier) != nil })
        else {
            throw PostgresError(code: .migration, message: "invalid migrations table name \(table)")
        }
        self.directory = directory
        self.table = table
        self.logger = logger
    }

    /// The migration files, sorted by version. Throws on a `.sql` file without a numeric
    /// prefix and on two files with the same version.
    public func loadMigrations() throws -> [PostgresMigration] {
        let fileNames: [String]
        do {
            fileNames = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw PostgresError(code: .migration, message: "cannot read migrations directory \(directory)")
        }
        var migrations: [PostgresMigration] = []
        for fileName in fileNames where fileName.hasSuffix(".sql") {
            guard let match = fileName.wholeMatch(of: /([0-9]+)_(.+)\.sql/), let version = Int(match.1) else {
                throw PostgresError(
                    code: .migration, message: "migration file \(fileName) is not named NNNN_name.sql", context: fileName)
            }
            let path = directory.hasSuffix("/") ? directory + fileName : directory + "/" + fileName
            guard let data = FileManager.default.contents(atPath: path),
                let sql = String(data: data, encoding: .utf8)
            else {
                throw PostgresError(code: .migration, message: "cannot read migration file \(fileName) as UTF-8", context: fileName)
            }
            if let other = migrations.first(where: { $0.version == version }) {
                throw PostgresError(
                    code: .migration,
                    message: "migration files \(other.fileName) and \(fileName) have the same version \(version)",
                    context: fileName
                )
            }
            migrations.append(
                PostgresMigration(
                    version: version, name: String(match.2), fileName: fileName, sql: sql,
                    checksum: SHA256.hash(data: data).map { hexDigits[Int($0 >> 4)] + hexDigits[Int($0 & 0xF)] }.joined()))
        }
        return migrations.sorted { $0.version < $1.version }
    }

    /// Applies every file not yet recorded and returns their versions (empty when up to date).
    public func migrate(on connection: PostgresConnection) async throws -> [Int] {
        let migrations = try loadMigrations()
        let lockKey = advisoryLockKey
        // Another migrator may hold the lock for as long as its migrations take: wait for
        // it however long (the session defaults bound lock waits and statements), and
        // give the connection back with the defaults it came with.
        try await connection.execute("SET lock_timeout = 0")
        try await connection.execute("SET statement_timeout = 0")
        do {
            try await connection.execute("SELECT pg_advisory_lock($1)", [.init(lockKey)])
            let applied = try await applyPending(migrations, on: connection)
            try await connection.execute("SELECT pg_advisory_unlock($1)", [.init(lockKey)])
            try await connection.execute("RESET lock_timeout")
            try await connection.execute("RESET statement_timeout")
            return applied
        } catch {
            // A lost connection already released the session's lock.
            _ = try? await connection.execute("SELECT pg_advisory_unlock($1)", [.init(lockKey)])
            _ = try? await connection.execute("RESET lock_timeout")
            _ = try? await connection.execute("RESET statement_timeout")
            throw error
        }
    }

    public func migrate(pool: PostgresPool) async throws -> [Int] {
        try await pool.withConnection { connection in try await migrate(on: connection) }
    }

    private func applyPending(_ migrations: [PostgresMigration], on connection: PostgresConnection) async throws -> [Int] {
        let table = quotedTable
        try await connection.executeScript(
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            context: "create \(self.table)"
        )
        var recorded: [Int: String] = [:]
        for row in try await connection.query(PostgresQuery(unsafeSQL: "SELECT version, checksum FROM \(table)")) {
            recorded[try row.decode(Int.self, "version")] = try row.decode(String.self, "checksum")
        }
        for migration in migrations {
            if let checksum = recorded[migration.version], checksum != migration.checksum {
                throw PostgresError(
                    code: .migration,
                    message: "migration \(migration.fileName) changed after it was applied "
                        + "(recorded sha256 \(checksum), file sha256 \(migration.checksum)); add a new migration instead",
                    context: migration.fileName
                )
            }
        }

        var applied: [Int] = []
        for migration in migrations where recorded[migration.version] == nil {
            try await connection.transaction { connection in
                try await connection.executeScript(migration.sql, context: "migration \(migration.fileName)")
                try await connection.execute(
                    PostgresQuery(
                        unsafeSQL: "INSERT INTO \(table) (version, name, checksum) VALUES ($1, $2, $3)",
                        binds: [.init(migration.version), .init(migration.name), .init(migration.checksum)]
                    )
                )
            }
            logger.info(
                "postgres migration applied",
                metadata: [
                    "postgres.migration.version": "\(migration.version)",
                    "postgres.migration.file": "\(migration.fileName)",
                ]
            )
            applied.append(migration.version)
        }
        return applied
    }

    private var quotedTable: String {
        table.split(separator: ".").map { PostgresQuery.quoteIdentifier(String($0)) }.joined(separator: ".")
    }

    /// One lock per migrations table, so unrelated migrators never wait on each other.
    private var advisoryLockKey: Int64 {
        SHA256.hash(data: Array("warren.migrations.\(table)".utf8)).prefix(8).reduce(0) { $0 << 8 | Int64($1) }
    }
}

private let hexDigits = (0..<16).map { String($0, radix: 16) }
