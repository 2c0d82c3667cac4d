import Foundation
import Logging
@testable import Postgres
import Locking
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

        /// A connection through a proxy that worked once and now passes nothing either way.
        static func partitionedConnection() async throws -> (FaultProxy, PostgresConnection) {
            let proxy = try FaultProxy(upstreamPort: 5432)
            do {
                let connection = try await PostgresConnection.connect(
                    to: "host=127.0.0.1 port=\(proxy.port) user=warren password=warren dbname=warren", logger: Self.logger)
                #expect(try await connection.query("SELECT 1").count == 1)
                proxy.stall()
                return (proxy, connection)
            } catch {
                proxy.stop()
                throw error
            }
        }

        /// A network partition (the proxy passes nothing either way): the query in flight
        /// ends as soon as its task is cancelled — as when a shutdown's grace period ends —
        /// instead of waiting for TCP to give up; the connection reconnects afterwards.
        @Test func aQueryBlockedByAPartitionEndsWhenItsTaskIsCancelled() async throws {
            let (proxy, connection) = try await Self.partitionedConnection()
            defer { proxy.stop() }
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

        /// A task that is already cancelled when it calls (a rollback or commit on the way
        /// out of a shutdown that ran out of time) gets `cancelledJobBound`, not forever:
        /// the transaction's BEGIN below hangs on the partition and is interrupted.
        /// A task cancelled while its call waits behind another task's on the connection's
        /// thread: the other call is left alone (it used to be interrupted in its place),
        /// and this one, once it starts, gets the bound of a call started cancelled (it used
        /// to run unbounded: 20 s here).
        @Test func aCancellationWhileQueuedEndsItsOwnCallNotTheOneRunning() async throws {
            let connection = try await PostgresConnection.connect(to: TestEnvironment.databaseURL, logger: Self.logger)
            let running = Task { try await connection.query("SELECT pg_sleep(1)").count }
            try await eventually("the first call is in flight") { connection.hasCallInFlight }
            let started = ContinuousClock.now
            let asked = connection.jobsAskedFor
            let queued = Task { try await connection.query("SELECT pg_sleep(20)").count }
            try await eventually("the second call is queued behind the first") { connection.jobsAskedFor == asked + 1 }
            queued.cancel()
            #expect(try await running.value == 1, "the running call is not the cancelled task's")
            let result = await queued.result
            let took = ContinuousClock.now - started
            #expect(took < .seconds(8), "the queued call ended \(took) after it was asked for")
            #expect(throws: PostgresError.self) { try result.get() }
            #expect(try await connection.query("SELECT 3").count == 1, "the next call reconnects")
            await connection.close()
        }

        @Test func aCallStartedByACancelledTaskIsInterruptedAfterABound() async throws {
            let (proxy, connection) = try await Self.partitionedConnection()
            defer { proxy.stop() }
            let outcome = Mutex<(Duration, (any Error)?)?>(nil)
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                let started = ContinuousClock.now
                do {
                    _ = try await connection.transaction { try await $0.query("SELECT 2") }
                    outcome.withLock { $0 = (ContinuousClock.now - started, nil) }
                } catch {
                    outcome.withLock { $0 = (ContinuousClock.now - started, error) }
                }
            }
            // Polled: without the bound the task never ends (until the proxy stops).
            try await eventually(timeout: .seconds(15), "the cancelled task's call ended") { outcome.withLock { $0 != nil } }
            await task.value
            let (took, error) = try #require(outcome.withLock { $0 })
            #expect(took >= PostgresConnection.cancelledJobBound && took < .seconds(6), "ended after \(took)")
            #expect((error as? PostgresError)?.code == .connectionLost, "\(String(describing: error))")
            proxy.resume()
            #expect(try await connection.query("SELECT 3").count == 1, "the next call reconnects")
            await connection.close()
        }

        /// SIGTERM while the database is cut off mid-batch: `warren consume` exits within
        /// its grace period (it used to wait for TCP to give up), and the event it was
        /// applying is not lost: unacked, it is back in the queue.
        @Test func sigtermDuringADatabasePartitionExitsWithinTheGracePeriodAndLosesNothing() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let proxy = try FaultProxy(upstreamPort: 5432)
            defer { proxy.stop() }
            let process = try WarrenProcess.consume(
                harness, environment: ["WARREN_DATABASE_URL": "postgresql://warren:warren@127.0.0.1:\(proxy.port)/warren"],
                arguments: ["--grace-period", "2"])
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }
            let first = userCreated(TestEnvironment.uniqueName("before-partition"))
            try await harness.publish([first])
            try await eventually("the first event applied") { try await harness.inboxCount(ids: [first.id]) == 1 }
            proxy.stall()
            let second = userCreated(TestEnvironment.uniqueName("during-partition"))
            try await harness.publish([second])
            try await eventually("the second event taken by the consumer") {
                let info = try await harness.channel.queueInfo(harness.spec.queueName)
                return info.messageCount == 0
            }
            let signalled = ContinuousClock.now
            exited = true
            let status = process.kill(SIGTERM)
            #expect(ContinuousClock.now - signalled < .seconds(8), "exited \(ContinuousClock.now - signalled) after SIGTERM")
            #expect(status == 0 || status == 1, "exit status \(status)")
            try await eventually("the unacked event is back in the queue") { try await harness.messages(in: harness.spec.queueName) == 1 }
            proxy.resume()
            #expect(try await harness.inboxCount(ids: [second.id]) == 0)
            reportFault("SIGTERM during a database partition", [
                "exit status": Int(status), "milliseconds to exit": Int((ContinuousClock.now - signalled) / .milliseconds(1)),
                "back in the queue": try await harness.messages(in: harness.spec.queueName),
            ])
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
