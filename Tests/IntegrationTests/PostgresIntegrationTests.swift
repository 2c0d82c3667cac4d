import Foundation
import Logging
import Locking
import Postgres
import Testing

/// Against a real PostgreSQL: `WARREN_DATABASE_URL`, default the one `scripts/services start` runs.
/// Every test uses its own tables (UUID suffix), so the suite runs in parallel.
extension Integration {
    @Suite struct PostgresIntegrationTests {
        static let url =
            ProcessInfo.processInfo.environment["WARREN_DATABASE_URL"] ?? "postgresql://warren:warren@127.0.0.1:5432/warren"
        static let logger = Logger(label: "warren.tests.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

        private func connect() async throws -> PostgresConnection {
            try await PostgresConnection.connect(to: Self.url, logger: Self.logger)
        }

        private func uniqueName(_ prefix: String) -> String {
            "\(prefix)_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        }

        /// Creates a table, runs `body`, drops the table even if `body` throws.
        private func withTable<T>(
            _ columns: String,
            on connection: PostgresConnection,
            _ body: (String) async throws -> T
        ) async throws -> T {
            let table = uniqueName("pg_test")
            try await connection.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (\(columns))"))
            do {
                let result = try await body(table)
                try await connection.execute("DROP TABLE \(identifier: table)")
                return result
            } catch {
                _ = try? await connection.execute("DROP TABLE \(identifier: table)")
                throw error
            }
        }

        private func backendPID(_ connection: PostgresConnection) async throws -> Int {
            try await connection.query("SELECT pg_backend_pid() AS pid")[0].decode(Int.self, "pid")
        }

        private func terminate(_ pid: Int) async throws {
            let killer = try await connect()
            // Int binds as int8; pg_terminate_backend takes int4.
            let rows = try await killer.query("SELECT pg_terminate_backend(\(Int32(pid))) AS done")
            #expect(try rows[0].decode(Bool.self, "done"))
            await killer.close()
        }

        @Test func everySupportedTypeRoundTripsIncludingNull() async throws {
            let connection = try await connect()
            try await withTable(
                """
                id int PRIMARY KEY, t text, v varchar(20), i2 smallint, i4 int, i8 bigint, b bool,
                ts timestamptz, u uuid, j jsonb, raw bytea, d float8
                """,
                on: connection
            ) { table in
                let at = Date(timeIntervalSince1970: 1_714_564_800.123456)
                let id = UUID()
                let bytes: [UInt8] = [0, 1, 0x5C, 0x78, 0x27, 255]
                let payload = try PostgresValue.json(["amount": 1999])
                try await connection.execute(
                    """
                    INSERT INTO \(identifier: table) VALUES
                    (1, \("text"), \("varchar"), \(Int16(-7)), \(Int32.max), \(Int64.min), \(true), \(at), \(id), \(payload),
                     \(bytes), \(-1.5e-300))
                    """
                )
                try await connection.execute(
                    PostgresQuery(unsafeSQL: "INSERT INTO \(table) (id) VALUES ($1)", binds: [2])
                )
                let rows = try await connection.query("SELECT * FROM \(identifier: table) ORDER BY id")
                #expect(rows.count == 2)
                let row = rows[0]
                #expect(try row.decode(String.self, "t") == "text")
                #expect(try row.decode(String.self, "v") == "varchar")
                #expect(try row.decode(Int.self, "i2") == -7)
                #expect(try row.decode(Int16.self, "i2") == -7)
                #expect(try row.decode(Int.self, "i4") == Int(Int32.max))
                #expect(try row.decode(Int64.self, "i8") == Int64.min)
                #expect(try row.decode(Bool.self, "b"))
                #expect(try row.decode(Date.self, "ts") == PostgresTimestampProbe.serverRounded(at))
                #expect(abs(try row.decode(Date.self, "ts").timeIntervalSince(at)) < 0.000_001)
                #expect(try row.decode(UUID.self, "u") == id)
                #expect(try row.decodeJSON([String: Int].self, "j") == ["amount": 1999])
                #expect(try row.decode([UInt8].self, "raw") == bytes)
                #expect(try row.decode(Data.self, "raw") == Data(bytes))
                #expect(try row.decode(Double.self, "d") == -1.5e-300)

                let nulls = rows[1]
                for column in ["t", "v"] { #expect(try nulls.decode(String?.self, column) == nil) }
                #expect(try nulls.decode(Int?.self, "i4") == nil)
                #expect(try nulls.decode(Bool?.self, "b") == nil)
                #expect(try nulls.decode(Date?.self, "ts") == nil)
                #expect(try nulls.decode(UUID?.self, "u") == nil)
                #expect(try nulls.decode([UInt8]?.self, "raw") == nil)
                #expect(try nulls.decode(Double?.self, "d") == nil)
                #expect(throws: PostgresError.self) { try nulls.decode(String.self, "t") }
            }
            await connection.close()
        }

        @Test func bindsOfEveryTypeComeBackFromSelect() async throws {
            let connection = try await connect()
            let at = Date(timeIntervalSince1970: -86_400 * 365.25 * 100 + 0.5)
            let emptyBytes: [UInt8] = []
            let none: String? = nil
            let row = try await connection.query(
                "SELECT \(42) AS i, \(true) AS b, \(at) AS ts, \(2.5) AS d, \(emptyBytes) AS raw, \(none)::text AS n, \("x") AS s"
            )[0]
            #expect(try row.decode(Int.self, "i") == 42)
            #expect(try row.decode(Bool.self, "b"))
            #expect(try row.decode(Date.self, "ts") == at)
            #expect(try row.decode(Double.self, "d") == 2.5)
            #expect(try row.decode([UInt8].self, "raw") == [])
            #expect(try row.decode(String?.self, "n") == nil)
            #expect(try row.decode(String.self, "s") == "x")
            await connection.close()
        }

        @Test func timestamptzIsReadCorrectlyWhateverTheInputZone() async throws {
            let connection = try await connect()
            let row = try await connection.query(
                "SELECT '2024-05-01 17:30:00.654321+05:30'::timestamptz AS a, '1900-01-01 00:00:00 Europe/Amsterdam'::timestamptz AS b"
            )[0]
            #expect(try row.decode(Date.self, "a") == Date(timeIntervalSince1970: 1_714_564_800.654321))
            #expect(try row.decode(Date.self, "b") == Date(timeIntervalSince1970: -2_208_988_800 - 1172))
            await connection.close()
        }

        @Test func aThrowingTransactionRollsBack() async throws {
            struct Boom: Error {}
            let connection = try await connect()
            try await withTable("id int PRIMARY KEY", on: connection) { table in
                await #expect(throws: Boom.self) {
                    try await connection.transaction { tx in
                        try await tx.execute("INSERT INTO \(identifier: table) VALUES (\(1))")
                        throw Boom()
                    }
                }
                let count = try await connection.query("SELECT count(*) AS n FROM \(identifier: table)")[0]
                #expect(try count.decode(Int.self, "n") == 0)

                try await connection.transaction { tx in
                    try await tx.execute("INSERT INTO \(identifier: table) VALUES (\(2))")
                    // An inner failure rolls back to its savepoint only.
                    try? await tx.transaction { inner in
                        try await inner.execute("INSERT INTO \(identifier: table) VALUES (\(3))")
                        throw Boom()
                    }
                }
                let ids = try await connection.query("SELECT id FROM \(identifier: table) ORDER BY id").map {
                    try $0.decode(Int.self, "id")
                }
                #expect(ids == [2])
            }
            await connection.close()
        }

        @Test func afterCommitActionsRunOnlyOnceTheOutermostTransactionCommitted() async throws {
            struct Boom: Error {}
            let connection = try await connect()
            let ran = Mutex<[String]>([])
            try await withTable("id int PRIMARY KEY", on: connection) { table in
                try await connection.transaction { tx in
                    try await tx.execute("INSERT INTO \(identifier: table) VALUES (\(1))")
                    tx.afterCommit { ran.withLock { $0.append("outer") } }
                    try await tx.transaction { inner in
                        inner.afterCommit { ran.withLock { $0.append("inner, released") } }
                    }
                    // Not yet: the savepoint's action waits for the outer commit too.
                    #expect(ran.withLock { $0 }.isEmpty)
                    try? await tx.transaction { inner in
                        inner.afterCommit { ran.withLock { $0.append("inner, rolled back") } }
                        throw Boom()
                    }
                    tx.afterCommit { ran.withLock { $0.append("committed") } }
                }
                #expect(ran.withLock { $0 } == ["outer", "inner, released", "committed"])
                ran.withLock { $0 = [] }
                await #expect(throws: Boom.self) {
                    try await connection.transaction { tx in
                        tx.afterCommit { ran.withLock { $0.append("rolled back") } }
                        throw Boom()
                    }
                }
                // A commit that fails (the transaction was aborted) runs nothing.
                await #expect(throws: PostgresError.self) {
                    try await connection.transaction { tx in
                        tx.afterCommit { ran.withLock { $0.append("failed commit") } }
                        _ = try? await tx.execute("INSERT INTO \(identifier: table) VALUES (\(1))")
                    }
                }
                #expect(ran.withLock { $0 }.isEmpty)
                // Outside a transaction: at once.
                connection.afterCommit { ran.withLock { $0.append("now") } }
                #expect(ran.withLock { $0 } == ["now"])
            }
            await connection.close()
        }

        @Test func committingAfterASwallowedErrorThrows() async throws {
            let connection = try await connect()
            try await withTable("id int PRIMARY KEY", on: connection) { table in
                await #expect(throws: PostgresError.self) {
                    try await connection.transaction { tx in
                        try await tx.execute("INSERT INTO \(identifier: table) VALUES (\(1))")
                        _ = try? await tx.execute("INSERT INTO \(identifier: table) VALUES (\(1))")
                    }
                }
                let count = try await connection.query("SELECT count(*) AS n FROM \(identifier: table)")[0]
                #expect(try count.decode(Int.self, "n") == 0)
            }
            await connection.close()
        }

        @Test func uniqueViolationCarriesSQLStateAndConstraint() async throws {
            let connection = try await connect()
            try await withTable("email text CONSTRAINT email_unique UNIQUE", on: connection) { table in
                let email = "alice@example.com"
                try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(email))")
                let error = try await #require(throws: PostgresError.self) {
                    try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(email))")
                }
                #expect(error.code == .queryFailed)
                #expect(error.sqlState == "23505")
                #expect(error.constraint == "email_unique")
                #expect(error.table == table)
                #expect(error.detail?.contains(email) == true)
                #expect(!error.description.contains(email))
                // The connection is still good.
                #expect(try await connection.execute("DELETE FROM \(identifier: table)") == 1)
            }
            await connection.close()
        }

        @Test func awkwardStringsAreStoredVerbatim() async throws {
            let connection = try await connect()
            try await withTable("id int PRIMARY KEY, value text", on: connection) { table in
                let values = [
                    #"it's "quoted" \ back\\slash \x00 $1 $$ ?; -- not a comment"#,
                    "emoji 🐇🏳️‍🌈, CJK 兔子窝, combining e\u{301} vs \u{e9}, RTL עברית",
                    "",
                    String(repeating: "0123456789abcdef", count: 65_536),
                ]
                for (id, value) in values.enumerated() {
                    #expect(try await connection.execute("INSERT INTO \(identifier: table) VALUES (\(id), \(value))") == 1)
                }
                let stored = try await connection.query("SELECT value, octet_length(value) AS size FROM \(identifier: table) ORDER BY id")
                #expect(try stored.map { try $0.decode(String.self, "value") } == values)
                #expect(try stored[3].decode(Int.self, "size") == 1_048_576)
                #expect(try stored[1].decode(String.self, "value").unicodeScalars.elementsEqual(values[1].unicodeScalars))
            }
            await connection.close()
        }

        @Test func aKilledConnectionFailsOnceThenReconnects() async throws {
            let connection = try await connect()
            let pid = try await backendPID(connection)
            try await terminate(pid)
            let error = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1 AS one") }
            #expect(error.code == .connectionLost)
            #expect(connection.isBroken)
            let newPID = try await backendPID(connection)
            #expect(newPID != pid)
            #expect(!connection.isBroken)
            // The reconnected session has Warren's settings again.
            let zone = try await connection.query("SHOW TimeZone")[0].decode(String.self, at: 0)
            #expect(zone == "UTC")
            await connection.close()
        }

        @Test func aStatementIsPreparedOncePerSessionAndAgainAfterAReconnect() async throws {
            let connection = try await connect()
            let sql = "SELECT $1::int + 1 AS n"
            func preparedCopies() async throws -> Int {
                try await connection.query("SELECT count(*)::int AS copies FROM pg_prepared_statements WHERE statement = \(sql)")[0]
                    .decode(Int.self, "copies")
            }
            for number in 1...3 { #expect(try await connection.query(sql, [PostgresValue(Int32(number))])[0].decode(Int.self, "n") == number + 1) }
            #expect(try await preparedCopies() == 1)
            // A new session has no prepared statements: the statement is prepared there again
            // (a stale name would fail with "prepared statement … does not exist").
            try await terminate(try await backendPID(connection))
            await #expect(throws: PostgresError.self) { try await connection.query(sql, [PostgresValue(Int32(1))]) }
            #expect(try await connection.query(sql, [PostgresValue(Int32(41))])[0].decode(Int.self, "n") == 42)
            #expect(try await preparedCopies() == 1)
            await connection.close()
        }

        @Test func aStatementPlannedEachRunIsNeverPrepared() async throws {
            let connection = try await connect()
            let marker = TestEnvironment.uniqueName("each-run")
            for number in 1...6 {
                let query = PostgresQuery("SELECT \(Int32(number))::int + 1 AS n, \(marker)::text AS marker").plannedEachRun()
                #expect(try await connection.query(query)[0].decode(Int.self, "n") == number + 1)
                #expect(try await connection.execute(query) == 1)
            }
            let copies = try await connection.query("SELECT count(*)::int AS copies FROM pg_prepared_statements WHERE statement LIKE '%::text AS marker'")
            #expect(try copies[0].decode(Int.self, "copies") == 0, "parsed and planned on every run, never kept")
            // The same text without it is prepared, once.
            for _ in 1...2 { _ = try await connection.query("SELECT \(Int32(1))::int + 1 AS n, \(marker)::text AS marker") }
            let prepared = try await connection.query("SELECT count(*)::int AS copies FROM pg_prepared_statements WHERE statement LIKE '%::text AS marker'")
            #expect(try prepared[0].decode(Int.self, "copies") == 1)
            await connection.close()
        }

        @Test func aTableAlteredUnderAPreparedStatementFailsItOnceThenItIsPreparedAgain() async throws {
            let connection = try await connect()
            let other = try await connect()
            try await withTable("id int PRIMARY KEY", on: connection) { table in
                try await connection.execute("INSERT INTO \(identifier: table) (id) VALUES (1)")
                let select = "SELECT * FROM \(table) WHERE id = $1"
                _ = try await connection.query(select, [PostgresValue(Int32(1))])
                try await other.execute(PostgresQuery(unsafeSQL: "ALTER TABLE \(table) ADD COLUMN extra int DEFAULT 7"))
                // The server refuses the old plan ("cached plan must not change result type")…
                let error = try await #require(throws: PostgresError.self) { try await connection.query(select, [PostgresValue(Int32(1))]) }
                #expect(error.isStalePreparedStatement)
                // …and the next run prepares it afresh.
                let rows = try await connection.query(select, [PostgresValue(Int32(1))])
                #expect(try rows[0].decode(Int.self, "extra") == 7)
            }
            await other.close()
            await connection.close()
        }

        @Test func aConnectionLostInsideATransactionDoesNotSilentlyContinue() async throws {
            let connection = try await connect()
            let pid = try await backendPID(connection)
            let error = try await #require(throws: PostgresError.self) {
                try await connection.transaction { tx in
                    try await terminate(pid)
                    _ = try? await tx.query("SELECT 1 AS one")
                    // A retry inside the dead transaction must not run on a fresh session.
                    _ = try await tx.query("SELECT 2 AS two")
                }
            }
            #expect(error.code == .connectionLost)
            #expect(try await connection.query("SELECT 3 AS three")[0].decode(Int.self, "three") == 3)
            await connection.close()
        }

        @Test func thePoolReplacesAKilledConnection() async throws {
            let pool = PostgresPool(conninfo: Self.url, maxConnections: 1, logger: Self.logger)
            let pid = try await pool.withConnection { try await backendPID($0) }
            try await terminate(pid)
            let error = try await #require(throws: PostgresError.self) {
                try await pool.withConnection { try await $0.query("SELECT 1 AS one") }
            }
            #expect(error.code == .connectionLost)
            let newPID = try await pool.withConnection { try await backendPID($0) }
            #expect(newPID != pid)
            await pool.close()
        }

        @Test func thePoolQueuesTasksBeyondItsSize() async throws {
            let pool = PostgresPool(conninfo: Self.url, maxConnections: 2, logger: Self.logger)
            let pids = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            _ = try await connection.query("SELECT pg_sleep(0.05)")
                            return try await backendPID(connection)
                        }
                    }
                }
                return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
            }
            #expect(pids.count <= 2)
            await pool.close()
            await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in } }
        }

        /// A task never waits forever for a connection: held too long (or leaked), the pool
        /// says so. The connection given back later is leased again as usual.
        @Test func aTaskWaitingLongerThanTheAcquireTimeoutFailsInsteadOfHanging() async throws {
            let pool = PostgresPool(conninfo: Self.url, maxConnections: 1, acquireTimeout: .milliseconds(300), logger: Self.logger)
            let release = AsyncStream<Void>.makeStream()
            let (leased, leasedSignal) = AsyncStream<Void>.makeStream()
            let held = Task {
                try await pool.withConnection { _ in
                    leasedSignal.yield()
                    for await _ in release.stream { break }
                }
            }
            for await _ in leased { break }  // the only connection is leased
            let started = ContinuousClock.now
            let error = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in } }
            #expect(error?.code == .acquireTimeout)
            #expect(ContinuousClock.now - started < .seconds(5))
            release.continuation.yield()
            try await held.value
            #expect(try await pool.withConnection { try await backendPID($0) } > 0)
            await pool.close()
        }

        @Test func thePoolRollsBackATransactionLeftOpen() async throws {
            let pool = PostgresPool(conninfo: Self.url, maxConnections: 1, logger: Self.logger)
            try await pool.withConnection { connection in
                try await connection.execute("BEGIN")
                try await connection.execute("SET LOCAL statement_timeout = 1234")
            }
            let status = try await pool.withConnection { try await $0.query("SHOW statement_timeout")[0].decode(String.self, at: 0) }
            #expect(status != "1234ms")
            await pool.close()
        }

        @Test func migrationsApplyOnceAndRefuseEditedFiles() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("warren_migrations"))
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let first = uniqueName("pg_migrated")
            let second = uniqueName("pg_migrated")
            let tracking = uniqueName("pg_migrations")
            try "CREATE TABLE \(first) (id int);\nINSERT INTO \(first) VALUES (1);\n"
                .write(to: directory.appendingPathComponent("0001_first.sql"), atomically: true, encoding: .utf8)
            try "CREATE TABLE \(second) (id int);"
                .write(to: directory.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
            try "not sql, not a migration".write(to: directory.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)

            let connection = try await connect()
            let migrator = try PostgresMigrator(directory: directory.path, table: tracking, logger: Self.logger)
            do {
                #expect(try await migrator.migrate(on: connection) == [1, 10])
                #expect(try await migrator.migrate(on: connection) == [])
                let recorded = try await connection.query("SELECT version, name, checksum, applied_at FROM \(identifier: tracking) ORDER BY version")
                #expect(try recorded.map { try $0.decode(String.self, "name") } == ["first", "second"])
                #expect(try recorded[0].decode(String.self, "checksum").count == 64)
                _ = try recorded[0].decode(Date.self, "applied_at")

                try "CREATE TABLE \(second) (id bigint);"
                    .write(to: directory.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
                let error = try await #require(throws: PostgresError.self) { try await migrator.migrate(on: connection) }
                #expect(error.code == .migration)
                #expect(error.message.contains("0010_second.sql"))

                // A failing file rolls back alone and names itself; earlier files stay applied.
                try "CREATE TABLE \(second) (id int);"
                    .write(to: directory.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
                try "CREATE TABLE \(first)_x (id int); SELECT 1/0;"
                    .write(to: directory.appendingPathComponent("0011_broken.sql"), atomically: true, encoding: .utf8)
                let failure = try await #require(throws: PostgresError.self) { try await migrator.migrate(on: connection) }
                #expect(failure.sqlState == "22012")
                #expect(failure.context == "migration 0011_broken.sql")
                let leftover = try await connection.query("SELECT to_regclass(\("\(first)_x")) IS NULL AS gone")[0]
                #expect(try leftover.decode(Bool.self, "gone"))
            } catch {
                Issue.record(error)
            }
            for table in [first, second, tracking] {
                _ = try? await connection.execute("DROP TABLE IF EXISTS \(identifier: table)")
            }
            await connection.close()
        }

        @Test func theRepositoryMigrationsApply() async throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let migrator = try PostgresMigrator(
                directory: root.appendingPathComponent("migrations").path, table: uniqueName("pg_migrations"),
                logger: Self.logger)
            let connection = try await connect()
            // Into a schema of its own: the shared database already has these tables.
            let schema = uniqueName("migrations_schema")
            try await connection.execute("CREATE SCHEMA \(identifier: schema)")
            try await connection.execute("SET search_path TO \(identifier: schema)")
            let versions = try migrator.loadMigrations().map(\.version)
            #expect(versions.first == 1)
            #expect(try await migrator.migrate(on: connection) == versions)
            #expect(try await migrator.migrate(on: connection) == [])
            #expect(try await connection.query("SELECT to_regclass('users') IS NOT NULL AS made")[0].decode(Bool.self, "made"))
            _ = try? await connection.execute("DROP SCHEMA \(identifier: schema) CASCADE")
            await connection.close()
        }
    }

    /// PostgreSQL keeps microseconds: what a `Date` becomes after a trip through the server.
    enum PostgresTimestampProbe {
        static func serverRounded(_ date: Date) -> Date {
            Date(timeIntervalSinceReferenceDate: (date.timeIntervalSinceReferenceDate * 1_000_000).rounded() / 1_000_000)
        }
    }
}
