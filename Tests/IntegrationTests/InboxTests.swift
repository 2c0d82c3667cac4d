@testable import Consumers
import Foundation
import Postgres
import Synchronization
import Testing

extension Integration {
    /// The inbox claim against the real database: what it returns decides whether the
    /// consumer module runs at all, so duplicates across processes must never both pass.
    @Suite struct InboxTests {
        private final class Returned: Sendable {
            let flag = Atomic(false)
        }

        private func connect() async throws -> PostgresConnection {
            try await PostgresConnection.connect(to: TestEnvironment.databaseURL, logger: TestEnvironment.logger)
        }

        private func cleanUp(_ consumer: String) async throws {
            let connection = try await connect()
            try await connection.execute("DELETE FROM warren_inbox WHERE consumer = \(consumer)")
            await connection.close()
        }

        /// A second process claiming an id that a first one has claimed but not committed
        /// waits for that commit and then gets nothing back: its module never sees the event.
        @Test func aConcurrentClaimWaitsAndSeesTheDuplicate() async throws {
            let consumer = TestEnvironment.uniqueName("inbox")
            let (first, second) = (try await connect(), try await connect())
            let secondPID = try await second.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
            try await first.execute("BEGIN")
            #expect(try await Inbox.claim(consumer: consumer, ids: ["e1", "e2"], on: first) == ["e1", "e2"])

            let returned = Returned()
            let secondClaim = Task {
                defer { returned.flag.store(true, ordering: .releasing) }
                return try await second.transaction { try await Inbox.claim(consumer: consumer, ids: ["e2", "e3"], on: $0) }
            }
            // The second claim is on the server, waiting for the first's row lock.
            try await eventually("the second claim waits for a lock") {
                try await first.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(secondPID) AND wait_event_type = 'Lock'")[0]
                    .decode(Int.self, at: 0) == 1
            }
            let wentAhead = returned.flag.load(ordering: .acquiring)
            #expect(!wentAhead, "the second claim went ahead before the first committed")
            try await first.execute("COMMIT")
            #expect(try await secondClaim.value == ["e3"])

            #expect(try await Inbox.claim(consumer: consumer, ids: ["e1", "e2", "e3"], on: first).isEmpty)
            await first.close()
            await second.close()
            try await cleanUp(consumer)
        }

        /// Claims of a failed event are released, and a rolled-back batch claims nothing,
        /// so both come back as new. An id twice in one batch is claimed once.
        @Test func releasedAndRolledBackClaimsComeBack() async throws {
            let consumer = TestEnvironment.uniqueName("inbox")
            let connection = try await connect()
            try await connection.transaction { connection in
                #expect(try await Inbox.claim(consumer: consumer, ids: ["a", "a", "b"], on: connection) == ["a", "b"])
                try await Inbox.release(consumer: consumer, ids: ["b"], on: connection)
            }
            struct Abandon: Error {}
            await #expect(throws: Abandon.self) {
                try await connection.transaction { connection in
                    #expect(try await Inbox.claim(consumer: consumer, ids: ["c"], on: connection) == ["c"])
                    throw Abandon()
                }
            }
            #expect(try await Inbox.claim(consumer: consumer, ids: ["a", "b", "c"], on: connection) == ["b", "c"])
            await connection.close()
            try await cleanUp(consumer)
        }
    }
}
