import AMQP
import Consumers
import Foundation
import Handlers
import Messaging
import Testing
import Topology
import WarrenCore

extension Integration {
    /// The consumer runtime and the PostgreSQL consumers against the real broker and
    /// database: exactly once, retries through the delay tiers, dead-lettering, and
    /// surviving database, broker and process failures.
    @Suite struct ConsumerIntegrationTests {
        @Test func everyPublishedEventLandsExactlyOnce() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("once")
            let events = (0..<300).map { userCreated("\(prefix)-\($0)") }
            try await harness.publish(events)
            harness.start(module: UsersProjection())
            try await eventually("all 300 users stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") == 300
            }
            try await eventually("the queue is drained") { try await harness.messages(in: harness.spec.queueName) == 0 }
            #expect(try await harness.inboxCount(ids: events.map(\.id)) == 300)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func aDuplicateMessageIDHasNoEffect() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("dup")
            let first = userCreated(user, name: "First")
            var second = userCreated(user, name: "Second", time: Date().addingTimeInterval(60))
            second.id = first.id
            // One after the other: the batch publisher would send them concurrently.
            try await harness.publish([first])
            try await harness.publish([second])
            harness.start(module: UsersProjection())
            try await eventually("both deliveries settled") { try await harness.messages(in: harness.spec.queueName) == 0 }
            try await eventually("the first one applied") { try await harness.count("SELECT count(*) FROM users WHERE id = \(user)") == 1 }
            #expect(try await harness.count("SELECT count(*) FROM users WHERE id = \(user) AND name = 'First'") == 1)
            try await eventually("the duplicate was recognised") { harness.events.duplicates == [first.id] }
        }

        @Test func aHandlerFailingTwiceTakesTheDelayTiersAndLandsOnceOnAttemptThree() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let event = userCreated(TestEnvironment.uniqueName("flaky"))
            try await harness.publish([event])
            harness.start(module: FlakyUsers(failing: [event.id: 2]))
            try await eventually("the user landed") {
                try await harness.count("SELECT count(*) FROM users WHERE id = \(event.data!["id"]!.stringValue!)") == 1
            }
            let failures = harness.events.failures.filter { $0.messageID == event.id }
            #expect(failures.map(\.attempt) == [1, 2])
            #expect(failures.map(\.destination) == [
                .retry(queue: harness.spec.retryQueueName(tier: 1), tier: 0), .retry(queue: harness.spec.retryQueueName(tier: 2), tier: 1),
            ])
            #expect(harness.events.applied == [event.id], "applied once, on the third attempt")
            #expect(try await harness.inboxCount(ids: [event.id]) == 1)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func anAlwaysFailingHandlerDeadLettersAfterMaxAttemptsWithTheReason() async throws {
            let harness = try await ConsumerHarness.make(maxAttempts: 3)
            defer { Task { await harness.tearDown() } }
            let event = userCreated(TestEnvironment.uniqueName("doomed"))
            try await harness.publish([event])
            harness.start(module: FlakyUsers(failing: [event.id: -1]))
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            let headers = try #require(dead.properties.headers)
            #expect(dead.body == event.jsonBytes())
            #expect(dead.properties.messageID == event.id)
            #expect(dead.properties.type == "user.created")
            #expect(headers[WarrenHeader.attempts]?.intValue == 3)
            #expect(headers[WarrenHeader.consumer]?.stringValue == "users.projection")
            #expect(headers[WarrenHeader.errorType]?.stringValue == "test.flaky")
            #expect(headers[WarrenHeader.error]?.stringValue == "provider unavailable (simulated)")
            #expect(headers[WarrenHeader.originalExchange]?.stringValue == "events")
            #expect(headers[WarrenHeader.originalRoutingKey]?.stringValue == "user.created")
            let first = try #require(headers[WarrenHeader.firstFailedAt]?.stringValue.flatMap(RFC3339.parse))
            let last = try #require(headers[WarrenHeader.lastFailedAt]?.stringValue.flatMap(RFC3339.parse))
            #expect(first < last)
            #expect(try await harness.inboxCount(ids: [event.id]) == 0, "a dead-lettered message must not be in the inbox")
        }

        @Test func malformedAndInvalidEventsDeadLetterAtOnceWhileTheRestOfTheBatchCommits() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("mixed")
            let good = (0..<5).map { userCreated("\(prefix)-\($0)") }
            try await harness.publish(Array(good[0..<2]))
            try await harness.publishRaw(Array("{not json".utf8), routingKey: "user.created", messageID: "malformed-\(prefix)")
            var invalid = userCreated("\(prefix)-invalid")
            invalid.data = ["id": .string("\(prefix)-invalid"), "name": "No Email"]
            try await harness.publishRaw(invalid.jsonBytes(), routingKey: "user.created", messageID: invalid.id)
            try await harness.publish(Array(good[2...]))
            harness.start(module: UsersProjection())
            try await eventually("two dead letters") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 2 }
            try await eventually("the good five stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") == 5
            }
            let dead = try await harness.drainDeadLetters()
            let types = Set(dead.compactMap { $0.properties.headers?[WarrenHeader.errorType]?.stringValue })
            #expect(types == ["event.malformed", "event.schemaViolation"])
            #expect(dead.allSatisfy { $0.properties.headers?[WarrenHeader.attempts]?.intValue == 1 })
            let schemaError = dead.first { $0.properties.messageID == invalid.id }?.properties.headers?[WarrenHeader.error]?.stringValue
            #expect(schemaError?.contains("data.email") == true)
        }

        /// Alone (batch size 1) and all in one batch, where the same user appears several
        /// times in one multi-row statement.
        @Test(arguments: [1, 50])
        func outOfOrderUserEventsConvergeToTheNewest(batchSize: Int) async throws {
            let harness = try await ConsumerHarness.make(batchSize: batchSize)
            defer { Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("order")
            let t0 = Date(timeIntervalSince1970: 1_700_000_000)
            func event(_ type: String, _ seconds: Double, _ data: JSONValue) -> CloudEvent {
                CloudEvent(type: type, source: "/tests", data: data, time: t0.addingTimeInterval(seconds))
            }
            let user2 = user + "-deleted"
            try await harness.publish([
                event("user.updated", 30, ["id": .string(user), "name": "Newest"]),
                event("user.created", 10, ["id": .string(user), "name": "Oldest", "email": "old@example.com"]),
                event("user.updated", 20, ["id": .string(user), "name": "Middle", "email": "mid@example.com"]),
                event("user.deleted", 40, ["id": .string(user2)]),
                event("user.created", 10, ["id": .string(user2), "name": "Gone", "email": "gone@example.com"]),
                event("user.updated", 35, ["id": .string(user2), "name": "Still gone"]),
            ])
            harness.start(module: UsersProjection())
            try await eventually("all six applied") { try await harness.messages(in: harness.spec.queueName) == 0 }
            try await eventually("converged") {
                try await harness.count("SELECT count(*) FROM users WHERE id = \(user) AND name = 'Newest' AND email = 'mid@example.com'") == 1
            }
            #expect(try await harness.count("SELECT count(*) FROM users WHERE id = \(user2) AND deleted_at IS NOT NULL") == 1)
        }

        @Test func paymentsLedgerUpdatesStatusAndDeadLettersConflicts() async throws {
            let harness = try await ConsumerHarness.make(consumer: "payments.ledger", bindings: ["payment.*"])
            defer { Task { await harness.tearDown() } }
            let payment = TestEnvironment.uniqueName("pay")
            func event(_ type: String, amount: Int64, currency: String = "EUR") -> CloudEvent {
                var data: [String: JSONValue] = ["payment_id": .string(payment), "user_id": "u1", "amount": .integer(amount), "currency": .string(currency)]
                if type == "payment.failed" { data["failure_code"] = "card_declined"; data["failure_message"] = "declined" }
                return CloudEvent(type: type, source: "/tests", data: .object(data))
            }
            try await harness.publish([event("payment.failed", amount: 1250), event("payment.succeeded", amount: 1250)])
            harness.start(module: PaymentsLedger())
            try await eventually("succeeded after failed") {
                try await harness.count("SELECT count(*) FROM payments WHERE payment_id = \(payment) AND status = 'succeeded' AND failure_code IS NULL") == 1
            }
            try await harness.publish([event("payment.succeeded", amount: 9999), event("payment.failed", amount: 1250)])
            try await eventually("the conflict is dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.headers?[WarrenHeader.errorType]?.stringValue == "payment.conflict")
            #expect(dead.properties.headers?[WarrenHeader.error]?.stringValue?.contains("amount") == true)
            #expect(dead.properties.headers?[WarrenHeader.error]?.stringValue?.contains("9999") == false, "payment data leaked into headers")
            #expect(try await harness.count("SELECT count(*) FROM payments WHERE payment_id = \(payment) AND amount = 1250 AND status = 'succeeded'") == 1)
        }

        @Test func postgresStoppedForTenSecondsMidStreamLosesAndDuplicatesNothing() async throws {
            try await assertSurvives { harness in
                try TestEnvironment.services("stop", "postgres")
                try await Task.sleep(for: .seconds(10))
                try TestEnvironment.services("start", "postgres")
            }
        }

        @Test func aBrokerRestartMidStreamLosesAndDuplicatesNothing() async throws {
            try await assertSurvives { _ in try TestEnvironment.services("restart", "rabbitmq") }
        }

        /// Publishes 400 events at 40/s with the consumer running, and runs `disruption` two
        /// seconds in, so events are in flight throughout: every event lands once, nothing
        /// is retried or dead-lettered.
        private func assertSurvives(_ disruption: (ConsumerHarness) async throws -> Void) async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("survive")
            let events = (0..<400).map { userCreated("\(prefix)-\($0)") }
            harness.start(module: UsersProjection())
            let publisher = EventPublisher(
                channel: harness.channel, catalog: harness.catalog,
                options: PublishOptions(
                    timeout: .seconds(5),
                    retry: RetryPolicy(maxAttempts: 40, initialDelay: .milliseconds(250), backoff: .constant, maxDelay: .seconds(1)),
                    rateLimit: RateLimiter(rate: 40, per: .seconds(1))))
            let publishing = Task { await publisher.publish(events, window: 64) }
            // Disrupted mid-stream: once events are flowing end to end (about a second in).
            try await eventually("40 users stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") >= 40
            }
            try await disruption(harness)
            for result in await publishing.value { try result.get() }
            try await eventually(timeout: .seconds(90), "all 400 users stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") == 400
            }
            #expect(try await harness.inboxCount(ids: events.map(\.id)) == 400)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
            #expect(harness.events.failures.isEmpty, "no event was retried or dead-lettered")
            try await harness.stop()
        }

        @Test func aConsumerProcessKilledMidBatchAndRestartedLosesNothing() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("sigkill")
            let events = (0..<3000).map { userCreated("\(prefix)-\($0)") }
            try await harness.publish(events)
            let first = try WarrenProcess.consume(harness)
            try await eventually("the first process is consuming") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") > 100
            }
            #expect(first.kill(SIGKILL) != 0, "killed by a signal, not exited")
            let second = try WarrenProcess.consume(harness)
            try await eventually(timeout: .seconds(60), "all 3000 users stored") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") == 3000
            }
            #expect(try await harness.inboxCount(ids: events.map(\.id)) == 3000)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
            #expect(second.kill(SIGTERM) == 0)
        }

        @Test func sigtermDrainsTheInFlightBatchAndExitsZero() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("sigterm")
            try await harness.publish((0..<3000).map { userCreated("\(prefix)-\($0)") })
            let process = try WarrenProcess.consume(harness)
            try await eventually("consuming") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") > 0
            }
            let started = ContinuousClock.now
            #expect(process.kill(SIGTERM) == 0, "exit status after SIGTERM")
            #expect(ContinuousClock.now - started < .seconds(30))
            try await eventually("every event stored or back in the queue") {
                let stored = try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")")
                return stored + (try await harness.messages(in: harness.spec.queueName)) == 3000
            }
        }

        @Test func gracefulShutdownFinishesTheBatchAndReturnsTheRest() async throws {
            let harness = try await ConsumerHarness.make(batchSize: 10)
            defer { Task { await harness.tearDown() } }
            let prefix = TestEnvironment.uniqueName("drain")
            try await harness.publish((0..<500).map { userCreated("\(prefix)-\($0)") })
            harness.start(module: UsersProjection())
            try await eventually("consumption started") {
                try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")") > 0
            }
            try await harness.stop()
            // Every event is either stored or back in the queue: none lost, none in limbo.
            try await eventually("unsettled deliveries returned") {
                let stored = try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")")
                return stored + (try await harness.messages(in: harness.spec.queueName)) == 500
            }
        }
    }
}
