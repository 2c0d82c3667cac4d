import Foundation
import Testing
import WarrenCore

extension Integration {
    /// `warren status`: one row per consumer of the topology, read from the broker and the database.
    @Suite struct StatusTests {
        @Test func showsDepthsConsumersAndTheLastFailure() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let process = try WarrenProcess.consume(harness)
            defer { _ = process.kill(SIGTERM) }
            try await eventually("the consumer is subscribed") {
                try await harness.channel.queueInfo(harness.spec.queueName).consumerCount == 1
            }
            let garbage = "status-\(UUID().uuidString.prefix(8))"
            try await harness.publishRaw(Array("not json".utf8), routingKey: "user.created", messageID: garbage)

            var row: JSONValue = .null
            try await eventually("status shows the dead letter and its failure") {
                let result = try DeadLetterTests.warren(["status", "--json"], harness)
                guard result.status == 0, case .array(let rows)? = try? JSONValue(parsing: Array(result.stdout.utf8)) else { return false }
                row = rows.first { $0["consumer"]?.stringValue == "users.projection" } ?? .null
                return row["dead_letters"] == 1 && row["last_failure"]?["message_id"]?.stringValue == garbage
            }
            #expect(row["messages"] == 0 && row["consumers"] == 1 && row["queue"] == "users.projection")
            #expect(row["last_failure"]?["destination"] == "users.projection.dlq")
            #expect(row["last_failure"]?["error_type"]?.stringValue?.hasPrefix("event.") == true, "\(row)")
            // The harness declared only users.projection: the others are reported, not failed on.
            let table = try DeadLetterTests.warren(["status"], harness)
            #expect(table.status == 0, "\(table.stderr)")
            let lines = table.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("CONSUMER") == true)
            #expect(lines.contains { $0.hasPrefix("users.projection ") && $0.contains("→ users.projection.dlq") })
            #expect(lines.contains { $0.hasPrefix("email.notifications") && $0.contains("not declared") })
        }
    }
}
