import AMQP
import Consumers
import Foundation
import Handlers
import Messaging
import Operations
import Postgres
import Testing
import WarrenCore

extension Integration {
    /// `warren dlq` as ops run it: a real process against a dead-letter queue in a vhost of
    /// its own, holding 50 messages with the headers the consumer runtime writes.
    @Suite struct DeadLetterTests {
        static let queue = "users.projection.dlq"

        /// 50 dead-lettered users.projection messages, in this order: every fifth and the one
        /// after it a `user.updated` that hit a deadlock, the rest `user.created` whose
        /// provider timed out; the first ten failed three hours ago, the rest five minutes ago.
        struct Seeded {
            var ids: [String]
            var types: [String]
            func ids(ofType type: String) -> [String] { zip(ids, types).filter { $0.1 == type }.map(\.0) }
        }

        static func seed(_ harness: ConsumerHarness, count: Int = 50) async throws -> Seeded {
            var seeded = Seeded(ids: [], types: [])
            let now = Date()
            for index in 0..<count {
                let updated = index % 5 < 2
                let userID = "dlq-\(UUID().uuidString.prefix(8).lowercased())"
                let event = updated
                    ? CloudEvent(type: "user.updated", source: "/tests", data: ["id": .string(userID), "name": "Grace"])
                    : userCreated(userID)
                let failedAt = now.addingTimeInterval(index < 10 ? -3 * 3_600 : -5 * 60)
                var message = event.amqpMessage(headers: [
                    WarrenHeader.attempts: .int64(5),
                    WarrenHeader.consumer: "users.projection",
                    WarrenHeader.errorType: .string(updated ? "db.deadlock" : "provider.timeout"),
                    WarrenHeader.error: .string(updated ? "deadlock detected" : "smtp timeout after 30s"),
                    WarrenHeader.firstFailedAt: .string(RFC3339.format(failedAt.addingTimeInterval(-60))),
                    WarrenHeader.lastFailedAt: .string(RFC3339.format(failedAt)),
                    WarrenHeader.originalExchange: "events",
                    WarrenHeader.originalRoutingKey: .string(event.type),
                ])
                message.properties.deliveryMode = 2
                try await harness.channel.publish(message.body, exchange: "", routingKey: queue, properties: message.properties, mandatory: true)
                seeded.ids.append(event.id)
                seeded.types.append(event.type)
            }
            return seeded
        }

        struct Result {
            var status: Int32
            var stdout: String
            var stderr: String
        }

        /// Runs `warren ARGS` against the harness's vhost and the test database.
        static func warren(_ arguments: [String], _ harness: ConsumerHarness) throws -> Result {
            let (pid, directory) = try start(arguments, harness)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return Result(
                status: status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F),
                stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
        }

        /// Starts `warren ARGS` (stdin /dev/null, so not a terminal) and returns its pid.
        static func start(_ arguments: [String], _ harness: ConsumerHarness) throws -> (pid_t, String) {
            let directory = NSTemporaryDirectory() + "warren-dlq-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let command = "exec '\(TestEnvironment.warrenBinary)' \(arguments.map { "'\($0)'" }.joined(separator: " ")) > '\(directory)/out' 2> '\(directory)/err'"
            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_AMQP_URL"] = harness.amqpURL
            environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
            let pid = try spawn("/bin/sh", ["-c", command], environment: environment, output: directory + "/sh")
            return (pid, directory)
        }

        static func browse(_ harness: ConsumerHarness) async throws -> [AMQPDelivery] {
            try await DeadLetterQueues(connection: harness.amqp, logger: TestEnvironment.logger).browse(queue)
        }

        struct Listing: Decodable {
            var queue: String
            var declared: Bool
            var count: Int
            var messages: [Message]
            struct Message: Decodable {
                var id: String
                var type: String?
                var consumer: String?
                var error_type: String?
                var error: String?
                var attempts: Int?
                var first_failed_at: String?
                var last_failed_at: String?
                var age_seconds: Int?
            }
        }

        struct AuditRow {
            var action: String
            var selectors: String
            var ids: Int
            var finished: Bool
        }

        static func audit(_ harness: ConsumerHarness, actor: String) async throws -> [AuditRow] {
            try await harness.database.withConnection { connection in
                try await connection.query("""
                    SELECT action, selectors::text, cardinality(message_ids), finished_at IS NOT NULL
                    FROM warren_dlq_audit WHERE actor = \(actor) ORDER BY id
                    """).map {
                    AuditRow(
                        action: try $0.decode(String.self, at: 0), selectors: try $0.decode(String.self, at: 1),
                        ids: Int(try $0.decode(Int64.self, at: 2)), finished: try $0.decode(Bool.self, at: 3))
                }
            }
        }

        @Test func listingShowsEveryMessageAndLeavesTheQueueInOrder() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let seeded = try await Self.seed(harness)

            let result = try Self.warren(["dlq", "list", Self.queue, "--json"], harness)
            #expect(result.status == 0, "\(result.stderr)")
            let listing = try JSONDecoder().decode([Listing].self, from: Data(result.stdout.utf8))
            #expect(listing.count == 1)
            #expect(listing.first?.queue == Self.queue)
            #expect(listing.first?.count == 50)
            let messages = listing.first?.messages ?? []
            #expect(messages.map(\.id) == seeded.ids)
            #expect(messages.map(\.type) == seeded.types)
            let first = try #require(messages.first)
            #expect(first.consumer == "users.projection")
            #expect(first.error_type == "db.deadlock")
            #expect(first.error == "deadlock detected")
            #expect(first.attempts == 5)
            #expect(first.first_failed_at.flatMap(RFC3339.parse) != nil)
            #expect((first.age_seconds ?? 0) >= 3 * 3_600 - 5)
            #expect(messages[2].error_type == "provider.timeout")

            let table = try Self.warren(["dlq", "list", Self.queue], harness)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.hasPrefix("\(Self.queue): 50 messages"))
            #expect(table.stdout.contains("smtp timeout after 30s"))

            let show = try Self.warren(["dlq", "show", Self.queue, seeded.ids[7]], harness)
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains("x-warren-error: smtp timeout after 30s"))
            #expect(show.stdout.contains("\"id\" : \"\(seeded.ids[7])\""))

            // Browsing (three times now) kept every message, in order, with Warren's own
            // attempt count untouched; only the broker's x-delivery-count went up.
            let after = try await Self.browse(harness)
            #expect(after.map(\.properties.messageID) == seeded.ids)
            #expect(after.allSatisfy { $0.properties.headers?[WarrenHeader.attempts]?.intValue == 5 })
            #expect(try await harness.messages(in: Self.queue) == 50)
        }

        @Test func replayByTypeAndByIDIsProcessedExactlyOnce() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let seeded = try await Self.seed(harness)
            let actor = TestEnvironment.uniqueName("actor")
            harness.start(module: UsersProjection())

            let dryRun = try Self.warren(["dlq", "replay", Self.queue, "--type", "user.created", "--dry-run", "--json", "--actor", actor], harness)
            #expect(dryRun.status == 0, "\(dryRun.stderr)")
            let wouldMove = try JSONDecoder().decode([Listing.Message].self, from: Data(dryRun.stdout.utf8))
            #expect(wouldMove.map(\.id) == seeded.ids(ofType: "user.created"))
            #expect(try await harness.messages(in: Self.queue) == 50, "a dry run moves nothing")
            // --json: progress as JSON lines on stderr, the last one the final counts.
            let progress = dryRun.stderr.split(separator: "\n").compactMap { try? JSONValue(parsing: Array($0.utf8)) }
            #expect(progress.last == ["examined": 50, "total": 50, "selected": 30], "\(dryRun.stderr)")

            let byType = try Self.warren(["dlq", "replay", Self.queue, "--type", "user.created", "--actor", actor], harness)
            #expect(byType.status == 0, "\(byType.stderr)")
            #expect(byType.stdout.contains("replayed 30 messages"))
            #expect(!byType.stderr.contains("examined"), "no progress when stderr is not a terminal")
            let updated = seeded.ids(ofType: "user.updated")
            let byID = try Self.warren(["dlq", "replay", Self.queue, "--id", updated[3], "--id", updated[11], "--actor", actor], harness)
            #expect(byID.status == 0, "\(byID.stderr)")

            let replayed = seeded.ids(ofType: "user.created") + [updated[3], updated[11]]
            try await eventually("the consumer applied every replayed event") {
                try await harness.inboxCount(ids: replayed) == replayed.count
            }
            try await eventually("the replayed events were applied") { Set(harness.events.applied) == Set(replayed) }
            #expect(harness.events.applied.sorted() == replayed.sorted(), "each replayed event applied exactly once")
            #expect(harness.events.duplicates.isEmpty)
            let remaining = try await Self.browse(harness).compactMap(\.properties.messageID)
            #expect(remaining == updated.filter { !replayed.contains($0) }, "the rest stay, in order")

            let rows = try await Self.audit(harness, actor: actor)
            #expect(rows.map(\.action) == ["replay", "replay"], "dry runs are not audited")
            #expect(rows.map(\.ids) == [30, 2])
            #expect(rows.allSatisfy { $0.finished })
            #expect(rows.first?.selectors.contains("\"type\": \"user.created\"") == true)
        }

        /// A replay that fails midway (here: a message without its original exchange)
        /// first acks the originals whose put-back copies were confirmed, so the DLQ keeps
        /// each message once: the ones replayed before the failure are gone, none doubled.
        @Test func aReplayThatFailsMidwayLeavesNoDuplicates() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let first = try await Self.seed(harness, count: 40)
            let broken = CloudEvent(type: "user.updated", source: "/tests", data: ["id": "no-origin", "name": "Ada"])
            let message = broken.amqpMessage(headers: [WarrenHeader.attempts: .int64(5)])
            try await harness.channel.publish(message.body, exchange: "", routingKey: Self.queue, properties: message.properties, mandatory: true)
            let rest = try await Self.seed(harness, count: 10)

            let result = try Self.warren(["dlq", "replay", Self.queue, "--type", "user.updated", "--actor", "midway"], harness)
            #expect(result.status == 1)
            #expect(result.stderr.contains("no x-warren-original-exchange"), "\(result.stderr)")
            let replayed = first.ids(ofType: "user.updated")
            let remaining = try await Self.browse(harness).compactMap(\.properties.messageID)
            #expect(remaining.count == Set(remaining).count, "no message twice in the DLQ")
            #expect(Set(remaining) == Set(first.ids + [broken.id] + rest.ids).subtracting(replayed))
        }

        @Test func aReplayedMessageCountsItsReplayAndStartsAFreshAttemptCount() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let seeded = try await Self.seed(harness, count: 3)
            try await harness.channel.declareQueue("replay.target", arguments: ["x-queue-type": "quorum"])

            let result = try Self.warren(["dlq", "replay", Self.queue, "--id", seeded.ids[1], "--to-queue", "replay.target"], harness)
            #expect(result.status == 0, "\(result.stderr)")
            let delivery = try #require(try await harness.channel.get(queue: "replay.target"))
            let headers = delivery.properties.headers ?? [:]
            #expect(delivery.properties.messageID == seeded.ids[1])
            #expect(headers[WarrenHeader.replayed]?.intValue == 1)
            #expect(headers[WarrenHeader.replayedAt]?.stringValue.flatMap(RFC3339.parse) != nil)
            #expect(headers[WarrenHeader.attempts] == nil)
            #expect(headers[WarrenHeader.error] == nil)
            #expect(headers[WarrenHeader.firstFailedAt] != nil, "kept as history")
            #expect(headers[WarrenHeader.originalRoutingKey]?.stringValue == "user.updated")
            #expect(try await harness.messages(in: Self.queue) == 2)
        }

        @Test func aReplayKilledMidwayLosesNothingAndARerunFinishesIt() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let seeded = try await Self.seed(harness)
            try await harness.channel.declareQueue("replay.target", arguments: ["x-queue-type": "quorum"])

            let (pid, directory) = try Self.start(["dlq", "replay", Self.queue, "--all", "--to-queue", "replay.target", "--rate", "20"], harness)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await eventually("the replay is under way") { try await harness.messages(in: "replay.target") >= 10 }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            try await eventually("the killed connection's messages are back") {
                try await harness.messages(in: Self.queue) + harness.messages(in: "replay.target") >= 50
            }
            let moved = try await harness.messages(in: "replay.target")
            #expect(moved < 50, "killed before the end")

            let rerun = try Self.warren(["dlq", "replay", Self.queue, "--all", "--to-queue", "replay.target"], harness)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(try await harness.messages(in: Self.queue) == 0)
            var arrived: [String] = []
            while let delivery = try await harness.channel.get(queue: "replay.target") {
                arrived.append(delivery.properties.messageID ?? "")
                try harness.channel.ack(delivery)
            }
            #expect(Set(arrived) == Set(seeded.ids), "nothing lost")
            #expect(arrived.count - Set(arrived).count <= 1, "at most the message in flight at the kill is duplicated")
        }

        /// `dlq list` and `show` stream: over a DLQ of 100,000 messages (1 KiB bodies, the
        /// consumer's failure headers) their peak memory stays within 24 MiB of what they
        /// take over an empty queue, instead of growing with the queue (they used to hold
        /// every message). The text table streams the same way; `listingShows…` checks its
        /// form. The count can be lowered for a quick run with WARREN_TEST_DLQ_MESSAGES.
        @Test func listAndShowOverAHundredThousandMessagesRunInConstantMemory() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let total = Int(ProcessInfo.processInfo.environment["WARREN_TEST_DLQ_MESSAGES"] ?? "") ?? 100_000
            let filler = String(repeating: "x", count: 1_024)
            var confirmations: [PublishConfirmation] = []
            var lastID = ""
            for index in 0..<total {
                let event = CloudEvent(type: "user.created", source: "/tests", data: ["id": .string("big-\(index)"), "note": .string(filler)])
                let message = event.amqpMessage(headers: [
                    WarrenHeader.attempts: .int64(5), WarrenHeader.consumer: "users.projection", WarrenHeader.errorType: "provider.timeout",
                    WarrenHeader.error: "smtp timeout after 30s", WarrenHeader.lastFailedAt: .string(RFC3339.format(Date())),
                    WarrenHeader.originalExchange: "events", WarrenHeader.originalRoutingKey: "user.created",
                ])
                confirmations.append(harness.channel.send(message.body, exchange: "", routingKey: Self.queue, properties: message.properties))
                if confirmations.count == 2_000 {
                    for confirmation in confirmations { try await confirmation.confirmed() }
                    confirmations = []
                }
                lastID = event.id
            }
            for confirmation in confirmations { try await confirmation.confirmed() }
            _ = try await harness.channel.declareQueue("empty.dlq", durable: true, autoDelete: false)

            let (empty, baseline) = try Self.peakMemory(["dlq", "list", "empty.dlq", "--json"], harness)
            #expect(empty.status == 0, "\(empty.stderr)")
            #expect(try Self.warren(["dlq", "list", "empty.dlq"], harness).stdout == "empty.dlq: 0 messages\n", "no table header without rows")
            let started = ContinuousClock.now
            let (listing, listed) = try Self.peakMemory(["dlq", "list", Self.queue, "--json"], harness)
            let took = ContinuousClock.now - started
            #expect(listing.status == 0, "\(listing.stderr)")
            let parsed = try JSONDecoder().decode([Listing].self, from: Data(listing.stdout.utf8))
            #expect(parsed.first?.count == total && parsed.first?.messages.count == total)
            #expect(parsed.first?.messages.last?.id == lastID, "in queue order")
            let (show, shown) = try Self.peakMemory(["dlq", "show", Self.queue, lastID], harness)
            #expect(show.status == 0 && show.stdout.contains("big-\(total - 1)"), "\(show.stderr)")
            print("dlq over \(total) messages: peak RSS list --json \(listed) KiB, show \(shown) KiB, empty queue \(baseline) KiB; list took \(took)")
            for (what, peak) in [("list --json", listed), ("show", shown)] {
                #expect(peak - baseline < 24 << 10, "\(what): \(peak) KiB at peak against \(baseline) KiB over an empty queue")
            }
            #expect(try await harness.messages(in: Self.queue) == total, "the queue keeps every message")
        }

        /// Runs `warren ARGS` and returns its result and its peak resident memory in KiB:
        /// `VmHWM` read every 10 ms while it runs (the high-water mark only grows, and it is
        /// the process's own; `ru_maxrss` from `wait4` would report this test process's
        /// size, which a spawned child inherits).
        static func peakMemory(_ arguments: [String], _ harness: ConsumerHarness) throws -> (Result, Int) {
            let (pid, directory) = try start(arguments, harness)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var status: Int32 = 0
            var peak = 0
            while true {
                let waited = waitpid(pid, &status, WNOHANG)
                if waited == pid || (waited == -1 && errno != EINTR) { break }
                if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                   let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                   let kB = Int(line.split(separator: " ").dropFirst().first ?? "") {
                    peak = max(peak, kB)
                }
                usleep(10_000)
            }
            let result = Result(
                status: status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F),
                stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
            return (result, peak)
        }

        /// `dlq list` over the topology reports consumers whose DLQ was never declared
        /// (here: every consumer but users.projection) instead of failing; a queue named
        /// explicitly must exist, and a replay of a missing queue writes no audit row.
        @Test func undeclaredQueuesAreReportedAndAMissingQueueIsAuditedNowhere() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            _ = try await Self.seed(harness, count: 3)

            let all = try Self.warren(["dlq", "list"], harness)
            #expect(all.status == 0, "\(all.stderr)")
            #expect(all.stdout.contains("users.projection.dlq: 3 messages"))
            #expect(all.stdout.contains("payments.ledger.dlq: not declared on the broker (warren topology apply declares it)"))
            let json = try JSONDecoder().decode([Listing].self, from: Data(try Self.warren(["dlq", "list", "--json"], harness).stdout.utf8))
            #expect(json.first { $0.queue == "users.projection.dlq" }.map { ($0.declared, $0.count) } ?? (false, 0) == (true, 3))
            #expect(json.first { $0.queue == "payments.ledger.dlq" }?.declared == false)

            let namedJSON = try Self.warren(["dlq", "list", "nothing.dlq", "--json"], harness)
            #expect(namedJSON.status == 1 && namedJSON.stdout.isEmpty, "no partial JSON: \(namedJSON.stdout)")
            let named = try Self.warren(["dlq", "list", "nothing.dlq"], harness)
            #expect(named.status == 1)
            #expect(named.stderr.split(separator: "\n").count == 1)
            #expect(named.stderr.contains("no queue 'nothing.dlq'"))

            let actor = TestEnvironment.uniqueName("actor")
            let replay = try Self.warren(["dlq", "replay", "nothing.dlq", "--all", "--actor", actor], harness)
            #expect(replay.status == 1)
            #expect(replay.stderr.contains("no queue 'nothing.dlq'"))
            #expect(try await Self.audit(harness, actor: actor).isEmpty)
        }

        @Test func purgeNeedsConfirmationAndRemovesOnlyTheSelection() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let seeded = try await Self.seed(harness)
            let actor = TestEnvironment.uniqueName("actor")

            let noSelector = try Self.warren(["dlq", "purge", Self.queue, "--yes"], harness)
            #expect(noSelector.status == 64, "a usage error")
            let noTTY = try Self.warren(["dlq", "purge", Self.queue, "--error", "deadlock"], harness)
            #expect(noTTY.status == 1)
            #expect(noTTY.stderr.split(separator: "\n").count == 1)
            #expect(noTTY.stderr.contains("--yes"))
            #expect(try await harness.messages(in: Self.queue) == 50)

            let old = try Self.warren(["dlq", "purge", Self.queue, "--older-than", "1h", "--dry-run", "--json"], harness)
            #expect(try JSONDecoder().decode([Listing.Message].self, from: Data(old.stdout.utf8)).map(\.id) == Array(seeded.ids.prefix(10)))

            let purge = try Self.warren(["dlq", "purge", Self.queue, "--error", "deadlock", "--yes", "--actor", actor], harness)
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(purge.stdout.contains("purged 20 messages"))
            let remaining = try await Self.browse(harness).compactMap(\.properties.messageID)
            #expect(remaining == seeded.ids(ofType: "user.created"))

            let rows = try await Self.audit(harness, actor: actor)
            #expect(rows.map(\.action) == ["purge"])
            #expect(rows.first?.ids == 20)
            #expect(rows.first?.selectors.contains("deadlock") == true)
        }
    }
}
