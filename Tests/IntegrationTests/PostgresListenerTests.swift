import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Testing
import struct Synchronization.Atomic

/// `PostgresListener` as a Service in a `ServiceGroup`, against the real database.
extension Integration {
    @Suite struct PostgresListenerTests {
        /// Connected LISTEN sessions on `channel` (the last statement of a listening session).
        private static func listening(on channel: String, via connection: PostgresConnection) async throws -> Int {
            try await connection.query(
                "SELECT count(*) FROM pg_stat_activity WHERE query = \("LISTEN \"" + channel + "\"")"
            )[0].decode(Int.self, at: 0)
        }

        @Test func itWakesOnNotifyAndItsConnectionEndsWithItsRun() async throws {
            let channel = TestEnvironment.uniqueName("listen")
            let wakeups = Atomic<Int>(0)
            let listener = PostgresListener(conninfo: TestEnvironment.databaseURL, channel: channel, logger: TestEnvironment.logger) {
                wakeups.add(1, ordering: .relaxed)
            }
            let other = try await PostgresConnection.connect(to: TestEnvironment.databaseURL, logger: TestEnvironment.logger)
            defer { Task { await other.close() } }
            #expect(try await Self.listening(on: channel, via: other) == 0, "nothing before run()")

            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [listener], logger: TestEnvironment.logger))
            let running = Task { try await group.run() }
            // A (re)connection wakes its owner once: a notification missed meanwhile is looked for.
            try await eventually("connected and listening") {
                try await Self.listening(on: channel, via: other) == 1 && wakeups.load(ordering: .relaxed) == 1
            }
            for expected in 2...3 {
                try await other.execute("SELECT pg_notify(\(channel), 'x')")
                try await eventually("notification \(expected - 1)") { wakeups.load(ordering: .relaxed) == expected }
            }
            // Its session killed by the server: it connects again and wakes its owner.
            try await other.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = \("LISTEN \"" + channel + "\"")")
            try await eventually(timeout: .seconds(30), "listening again") {
                try await Self.listening(on: channel, via: other) == 1 && wakeups.load(ordering: .relaxed) == 4
            }

            // Shutdown ends the wait in poll at once (it would otherwise last 10 s).
            let stopping = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(ContinuousClock.now - stopping < .seconds(5))
            try await eventually("its session closed") { try await Self.listening(on: channel, via: other) == 0 }
        }
    }
}
