import Foundation
import Logging
@testable import Postgres
import Testing

extension Integration {
    /// Every connection Warren opens carries timeouts, so no libpq call waits forever on a
    /// server that is gone or a lock that is never released; the URL can still change them.
    @Suite struct PostgresTimeoutTests {
        static let logger = Logger(label: "warren.tests.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

        private func settings(_ url: String) async throws -> [String: String] {
            let connection = try await PostgresConnection.connect(to: url, logger: Self.logger)
            defer { Task { await connection.close() } }
            var settings: [String: String] = [:]
            for name in ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "application_name"] {
                settings[name] = try await connection.query(PostgresQuery(unsafeSQL: "SHOW \(name)"))[0].decode(String.self, at: 0)
            }
            return settings
        }

        @Test func connectionsHaveWarrensTimeoutsByDefault() async throws {
            let settings = try await settings(TestEnvironment.databaseURL)
            #expect(settings["statement_timeout"] == "1min")
            #expect(settings["lock_timeout"] == "10s")
            #expect(settings["idle_in_transaction_session_timeout"] == "1min")
            #expect(settings["application_name"] == "warren")
        }

        @Test func theURLOverridesTheDefaults() async throws {
            let options = "-c statement_timeout=5s".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let settings = try await settings(TestEnvironment.databaseURL + "?application_name=ops&options=\(options)")
            #expect(settings["statement_timeout"] == "5s")
            #expect(settings["lock_timeout"] == "0", "options given in the URL replace Warren's whole")
            #expect(settings["application_name"] == "ops")
        }

        /// A network partition (the proxy passes nothing either way): the query in flight
        /// ends as soon as its task is cancelled — as when a shutdown's grace period ends —
        /// instead of waiting for TCP to give up; the connection reconnects afterwards.
        @Test func aQueryBlockedByAPartitionEndsWhenItsTaskIsCancelled() async throws {
            let proxy = try StallingProxy(upstreamPort: 5432)
            defer { proxy.stop() }
            let connection = try await PostgresConnection.connect(
                to: "host=127.0.0.1 port=\(proxy.port) user=warren password=warren dbname=warren", logger: Self.logger)
            #expect(try await connection.query("SELECT 1").count == 1)
            proxy.stall()
            let task = Task { try await connection.query("SELECT pg_sleep(0.1)") }
            try await eventually("the query is on the wire") { connection.hasCallInFlight }
            let cancelled = ContinuousClock.now
            task.cancel()
            let result = await task.result
            #expect(ContinuousClock.now - cancelled < .seconds(2))
            guard case .failure(let error as PostgresError) = result else {
                Issue.record("the blocked query did not fail: \(result)")
                return
            }
            #expect(error.code == .connectionLost, "\(error)")
            proxy.resume()
            #expect(try await connection.query("SELECT 3").count == 1, "the next call reconnects")
            await connection.close()
        }

        @Test func aStatementPastTheTimeoutFailsInsteadOfHanging() async throws {
            let options = "-c statement_timeout=200ms".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let connection = try await PostgresConnection.connect(to: TestEnvironment.databaseURL + "?options=\(options)", logger: Self.logger)
            defer { Task { await connection.close() } }
            let error = await #expect(throws: PostgresError.self) { try await connection.execute("SELECT pg_sleep(5)") }
            #expect(error?.sqlState == "57014", "query_canceled")
        }
    }
}
