@testable import AMQP
import Consumers
import Foundation
import Handlers
import Messaging
import Testing
import WarrenCore

extension Integration {
    /// Headers are the publisher's word: anyone who can publish to `events` chooses them.
    /// A hostile value must dead-letter its own message with the reason, never crash the
    /// consumer (which the broker would then feed the same message in a loop).
    @Suite struct HostileHeaderTests {
        static let hostile: [(name: String, headers: AMQPTable, errorType: String)] = [
            ("attempts-max", [WarrenHeader.attempts: .int64(.max)], "header.x-warren-attempts"),
            ("attempts-negative", [WarrenHeader.attempts: .int64(-5)], "header.x-warren-attempts"),
            ("attempts-text", [WarrenHeader.attempts: "3"], "header.x-warren-attempts"),
        ]

        @Test func hostileHeadersAreDeadLetteredWithTheReasonAndTheConsumerKeepsGoing() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("hostile")
            let process = try WarrenProcess.consume(harness)
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }
            var ids: [String: String] = [:]
            for (index, hostile) in Self.hostile.enumerated() {
                let event = userCreated("\(prefix)-bad-\(index)")
                ids[event.id] = hostile.errorType
                let message = event.amqpMessage(headers: hostile.headers)
                try await harness.channel.publish(
                    message.body, exchange: "events", routingKey: message.routingKey, properties: message.properties, mandatory: true)
            }
            // 20,000 levels (5 bytes each: 100 KB of header, within frame_max 128 KiB), which
            // Warren's publisher refuses to send; rabbitmq-c 0.11 decodes it recursively on
            // the consumer's I/O thread before Warren sees it.
            let deep = userCreated("\(prefix)-bad-deep")
            ids[deep.id] = "header.depth"
            try RawPublisher.publishNestedHeader(
                levels: 20_000, url: harness.amqpURL, exchange: "events", routingKey: deep.type,
                body: deep.amqpMessage(headers: [:]).body, messageID: deep.id)
            let good = (0..<20).map { userCreated("\(prefix)-good-\($0)") }
            try await harness.publish(good)

            try await eventually("the good events stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-good-%")") == 20
            }
            try await eventually("every hostile message dead-lettered") {
                try await harness.messages(in: harness.spec.deadLetterQueueName) == ids.count
            }
            let dead = try await harness.drainDeadLetters()
            for delivery in dead {
                let id = try #require(delivery.properties.messageID)
                #expect(delivery.properties.headers?[WarrenHeader.errorType]?.stringValue == ids[id], "\(id)")
                #expect(delivery.properties.headers?[WarrenHeader.attempts]?.intValue == 1)
            }
            #expect(Set(dead.compactMap(\.properties.messageID)) == Set(ids.keys))
            reportFault("hostile headers", [
                "hostile": ids.count, "dead-lettered": dead.count, "good": good.count,
                "good applied": try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-good-%")"),
            ])
            #expect(try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-bad-%")") == 0)
            #expect(try await harness.messages(in: harness.spec.queueName) == 0)
            exited = true
            #expect(process.kill(SIGTERM) == 0, "the consumer was still running and exited cleanly")
        }
    
        /// A 64 MiB body (the broker takes up to 128 MiB) is dropped frame by frame as it
        /// arrives, never held: the message is rejected, the broker dead-letters it, and
        /// the consumer's peak memory stays far below the body's size.
        @Test func aBodyOf64MiBIsDeadLetteredUnreadAndNeverHeldInMemory() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let process = try WarrenProcess.consume(harness)
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }
            let warmUp = userCreated(TestEnvironment.uniqueName("before-huge"))
            try await harness.publish([warmUp])
            try await eventually("the first event applied") { try await harness.inboxCount(ids: [warmUp.id]) == 1 }
            let before = try Self.peakResidentMiB(process.pid)
            let id = TestEnvironment.uniqueName("huge")
            try await harness.publishRaw([UInt8](repeating: 0x20, count: 64 << 20), routingKey: "user.created", messageID: id)
            let good = userCreated(TestEnvironment.uniqueName("after-huge"))
            try await harness.publish([good])
            try await eventually("the next event applied") { try await harness.inboxCount(ids: [good.id]) == 1 }
            try await eventually("dead-lettered by the broker") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let after = try Self.peakResidentMiB(process.pid)
            #expect(after - before < 16, "peak resident memory went from \(before) to \(after) MiB for a 64 MiB body")
            reportFault("64 MiB body", ["peak MiB before": before, "peak MiB after": after, "dead-lettered": 1, "next applied": 1])
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.messageID == id && dead.body.count == 64 << 20)
            let death = dead.properties.headers?["x-death"]
            #expect("\(String(describing: death))".contains("rejected"), "x-death names the reason")
            #expect(try await harness.messages(in: harness.spec.queueName) == 0)
            exited = true
            #expect(process.kill(SIGTERM) == 0)
        }

        /// A delay tier or the DLQ deleted under a running consumer: the broker does not
        /// take the failed event's copy, so the original is put back, never acked; once the
        /// queue is declared again the event goes where it should. Nothing is lost.
        @Test func aRetryOrDeadLetterQueueDeletedUnderTheConsumerLosesNothing() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let flaky = userCreated(TestEnvironment.uniqueName("no-tier"))
            _ = try await harness.channel.deleteQueue(harness.spec.retryQueueName(tier: 1))
            _ = try await harness.channel.deleteQueue(harness.spec.deadLetterQueueName)
            harness.start(module: FlakyUsers(failing: [flaky.id: 1]))
            try await harness.publish([flaky])
            let garbage = TestEnvironment.uniqueName("no-dlq")
            try await harness.publishRaw(Array("not json".utf8), routingKey: "user.created", messageID: garbage)
            try await eventually("both copies refused by the broker") {
                Set(harness.events.republishFailures.compactMap { $0 }).isSuperset(of: [flaky.id, garbage])
            }
            try await harness.applyTopology()
            try await eventually("the flaky event applied after its retry") { try await harness.inboxCount(ids: [flaky.id]) == 1 }
            try await eventually("the garbage dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.messageID == garbage)
            try await eventually("nothing left in the queue") { try await harness.messages(in: harness.spec.queueName) == 0 }
            reportFault("retry and dead-letter queues deleted", [
                "published": 2, "applied": try await harness.inboxCount(ids: [flaky.id]), "dead-lettered": 1, "lost": 0,
            ])
        }

        /// AMQP strings are bytes. A header value that is not UTF-8 is copied byte for byte
        /// (it used to be rewritten with replacement characters for good). A string
        /// property or header name that is not UTF-8 cannot be carried by a Swift copy, so
        /// the consumer rejects the message and the broker dead-letters the original
        /// unchanged; `dlq replay` leaves it where it is and says why.
        @Test func stringsThatAreNotUTF8ReachTheDLQByteForByteAndAreNeverRewritten() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            harness.start(module: FlakyUsers(failing: [:]))
            let note = AMQPFieldValue.invalidUTF8String([0x66, 0xFF, 0x6F])
            let copied = userCreated(TestEnvironment.uniqueName("note"))
            let message = copied.amqpMessage(headers: [WarrenHeader.attempts: "3", "x-note": note])
            try await harness.channel.publish(message.body, exchange: "events", routingKey: message.routingKey, properties: message.properties, mandatory: true)
            let rawID = Array("raw-".utf8) + [0xFF, 0xFE]
            try RawPublisher.publish(
                url: harness.amqpURL, exchange: "events", routingKey: "user.created",
                body: userCreated(TestEnvironment.uniqueName("raw")).amqpMessage(headers: [:]).body, messageID: rawID)
            try await eventually("both dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 2 }

            func deadLetters() async throws -> [AMQPDelivery] {
                let reader = try await harness.amqp.openChannel(confirms: false)
                var seen: [AMQPDelivery] = []
                while let delivery = try await reader.get(queue: harness.spec.deadLetterQueueName) { seen.append(delivery) }
                await reader.close()  // unacked: all go back
                return seen
            }
            let seen = try await deadLetters()
            let warrenCopy = try #require(seen.first { $0.properties.messageID == copied.id })
            #expect(warrenCopy.properties.headers?["x-note"] == note, "the value's bytes, not replacement characters")
            #expect(warrenCopy.properties.headers?[WarrenHeader.errorType]?.stringValue == "header.\(WarrenHeader.attempts)")
            let rejected = try #require(seen.first { $0.stringsNotUTF8 }, "the invalid message id survived")
            #expect(rejected.properties.headers?[WarrenHeader.errorType] == nil, "dead-lettered by the broker, not copied by Warren")
            #expect(rejected.properties.headers?["x-death"] != nil)

            let replay = try Integration.DeadLetterTests.warren(["dlq", "replay", harness.spec.deadLetterQueueName, "--all"], harness)
            #expect(replay.status == 0, "\(replay.stderr)")
            #expect(replay.stderr.contains("dlq.message.not_replayable"), "\(replay.stderr)")
            try await eventually("the replayed copy applied") { try await harness.inboxCount(ids: [copied.id]) == 1 }
            let left = try await deadLetters()
            #expect(left.count == 1 && left[0].stringsNotUTF8, "the rejected message stays, unchanged")
            reportFault("strings not UTF-8", ["dead-lettered": seen.count, "replayed": 1, "left unchanged": left.count])
        }

        /// `VmHWM` of /proc/PID/status: the most memory the process ever had resident.
        static func peakResidentMiB(_ pid: pid_t) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { throw TestFailure("no VmHWM in /proc/\(pid)/status") }
            return kB / 1024
        }

        /// Headers that fit as published but not once Warren adds its own (or a property the
        /// sender made too long) used to be requeued in a loop: such a message is
        /// dead-lettered with Warren's headers alone and `x-warren-headers-dropped`.
        @Test func aMessageThatCannotBeSentOnWithItsHeadersIsDeadLetteredWithoutThem() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let id = TestEnvironment.uniqueName("bigheaders")
            // 100 bytes short of a full frame: it goes out, Warren's failure headers do not fit.
            var properties = AMQPProperties(contentType: CloudEvent.contentType, headers: ["big": "", "traceparent": "00-t"], messageID: id)
            let room = WireLimits.maxPropertiesSize - (try WireLimits.encodedSize(properties)) - 100
            properties.headers?["big"] = .string(String(repeating: "h", count: room))
            try await harness.channel.publish(Array("{not json".utf8), exchange: "events", routingKey: "user.created", properties: properties, mandatory: true)
            let good = userCreated(TestEnvironment.uniqueName("after-big"))
            try await harness.publish([good])
            harness.start(module: UsersProjection())
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            try await eventually("the next event applied") { harness.events.applied == [good.id] }
            let dead = try #require(try await harness.drainDeadLetters().first)
            let headers = dead.properties.headers ?? [:]
            #expect(dead.properties.messageID == id)
            #expect(headers["big"] == nil && headers["traceparent"] == nil)
            #expect(headers[WarrenHeader.errorType]?.stringValue == "event.malformed")
            #expect(headers[WarrenHeader.headersDropped]?.stringValue?.contains("one AMQP frame holds at most") == true)
            #expect(headers[WarrenHeader.originalRoutingKey]?.stringValue == "user.created")
            #expect(dead.body == Array("{not json".utf8))
            #expect(harness.events.failures.map(\.destination) == [.deadLetter(queue: harness.spec.deadLetterQueueName)])
        }
    }
}
