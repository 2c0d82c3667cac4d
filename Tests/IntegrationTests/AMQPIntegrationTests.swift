@testable import AMQP
import Foundation
import Testing

extension Integration {
    /// The AMQP module against the real RabbitMQ that `scripts/services` runs.
    @Suite struct AMQPIntegrationTests {
        @Test func publishConfirmRoundTripCarriesPropertiesAndHeaders() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("roundtrip")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            defer { Task { try? await channel.deleteQueue(queue) } }

            let body = Array("{\"hello\":\"wörld\"}".utf8)
            let properties = AMQPProperties(
                contentType: "application/cloudevents+json", headers: [
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "x-warren-attempts": .int32(2), "nested": .table(["flag": true, "list": .array([1, "two"])]),
                ],
                deliveryMode: AMQPProperties.persistentDeliveryMode, correlationID: "corr-1", messageID: "msg-1",
                timestamp: 1_700_000_000, type: "user.created", appID: "tests")
            try await channel.publish(body, exchange: "", routingKey: queue, properties: properties)

            let delivery = try #require(try await channel.get(queue: queue))
            #expect(delivery.body == body)
            #expect(delivery.properties == properties)
            #expect(delivery.routingKey == queue)
            #expect(!delivery.redelivered)
            try channel.ack(delivery)
            #expect(try await channel.queueInfo(queue).messageCount == 0)
        }

        /// A property over 255 bytes cannot be encoded: the publish fails alone, before
        /// anything is written, and the connection and its other publishes carry on (it
        /// used to fail the write on the I/O thread and tear the connection down).
        @Test func aMessageThatCannotBeEncodedFailsAloneAndTheConnectionStaysUp() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("encodable")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            let long = String(repeating: "x", count: 256)
            let window = (0..<20).map { index in
                channel.send([1], exchange: "", routingKey: queue, properties: AMQPProperties(messageID: index == 10 ? long : "m\(index)"))
            }
            var failures: [AMQPError] = []
            for confirmation in window {
                do { try await confirmation.confirmed() } catch let error as AMQPError { failures.append(error) }
            }
            #expect(failures.map(\.code) == [.invalidMessage])
            #expect(failures.first?.description.contains("message_id is 256 bytes") == true)
            for bad in [
                AMQPProperties(headers: [long: 1]), AMQPProperties(headers: ["t": .table([long: 1])]), AMQPProperties(type: long),
            ] {
                let error = try await #require(throws: AMQPError.self) { try await channel.publish([1], exchange: "", routingKey: queue, properties: bad) }
                #expect(error.code == .invalidMessage)
            }
            await #expect(throws: AMQPError.self) { try await channel.publish([1], exchange: "", routingKey: long) }
            #expect(connection.state == .connected(endpoint: try AMQPEndpoint(url: TestEnvironment.amqpURL).redactedDescription))
            try await channel.publish([2], exchange: "", routingKey: queue)
            #expect(try await channel.queueInfo(queue).messageCount == 20)
        }

        /// Properties must fit in one frame: up to the limit they round-trip, one byte more
        /// fails that publish alone.
        @Test func headersUpToTheFrameLimitGoThroughAndOneByteMoreFailsAlone() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("framelimit")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            func properties(_ extra: Int) -> AMQPProperties {
                // table length 4 + key length 1 + "h" + type 1 + string length 4 = 11 bytes
                AMQPProperties(headers: ["h": .string(String(repeating: "v", count: WireLimits.maxPropertiesSize - 11 + extra))])
            }
            #expect(try WireLimits.encodedSize(properties(0)) == WireLimits.maxPropertiesSize)
            try await channel.publish([1], exchange: "", routingKey: queue, properties: properties(0), mandatory: true)
            let error = try await #require(throws: AMQPError.self) {
                try await channel.publish([2], exchange: "", routingKey: queue, properties: properties(1), mandatory: true)
            }
            #expect(error.code == .invalidMessage)
            let delivery = try #require(try await channel.get(queue: queue))
            #expect(delivery.properties.headers?["h"] == properties(0).headers?["h"])
            try channel.ack(delivery)
            #expect(connection.state == .connected(endpoint: try AMQPEndpoint(url: TestEnvironment.amqpURL).redactedDescription))
        }

        @Test func loginAdvertisesTheCapabilitiesWarrenRelies() async throws {
            let name = TestEnvironment.uniqueName("capabilities")
            let connection = try await AMQPConnection.forTests(name: name)
            defer { Task { await connection.close() } }
            var capabilities: [String: Any]?
            try await eventually("the management API lists the connection") {
                let listing = try await ManagementAPI.get("/api/connections") as? [[String: Any]] ?? []
                let properties = listing.compactMap { $0["client_properties"] as? [String: Any] }.first { $0["connection_name"] as? String == name }
                capabilities = properties?["capabilities"] as? [String: Any]
                return capabilities != nil
            }
            for capability in ["publisher_confirms", "consumer_cancel_notify", "connection.blocked", "authentication_failure_close"] {
                #expect(capabilities?[capability] as? Bool == true, "\(capability) not advertised")
            }
        }

        @Test func confirmsAreMatchedWhenTheBrokerAcksSeveralAtOnce() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("multiple")
            try await channel.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
            defer { Task { try? await channel.deleteQueue(queue) } }

            let count = 3000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask {
                        try await channel.publish(Array("m\(index)".utf8), exchange: "", routingKey: queue,
                                                  properties: AMQPProperties(deliveryMode: 2, messageID: "\(index)"))
                    }
                }
                try await group.waitForAll()
            }
            #expect(connection.loop.multipleConfirms.load(ordering: .relaxed) > 0, "the broker never acked with multiple=true")
            try await eventually("all \(count) messages in the queue") { try await channel.queueInfo(queue).messageCount == count }
        }

        /// `send` from one task with a sliding window: every confirmation settles, in
        /// order and exactly once, and all messages arrive in publish order.
        @Test func slidingWindowOfSendsFromOneTask() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("window")
            try await channel.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
            defer { Task { try? await channel.deleteQueue(queue) } }

            let count = 2000, window = 64
            var inFlight: [PublishConfirmation] = []
            for index in 0..<count {
                if inFlight.count == window { try await inFlight.removeFirst().confirmed() }
                inFlight.append(channel.send(Array("m\(index)".utf8), exchange: "", routingKey: queue, properties: AMQPProperties(deliveryMode: 2)))
            }
            for confirmation in inFlight { try await confirmation.confirmed() }
            let allSettled = inFlight.allSatisfy { $0.isSettled }
            #expect(allSettled)
            try await inFlight.last!.confirmed()  // awaiting again returns the same answer
            try await eventually("all \(count) messages in the queue") { try await channel.queueInfo(queue).messageCount == count }
            for index in [0, 1, 2] {
                let delivery = try #require(try await channel.get(queue: queue))
                #expect(delivery.body == Array("m\(index)".utf8))
                try channel.ack(delivery)
            }
        }

        /// An ack queued together with a synchronous method (`basic.get`) must not hold the
        /// method's request back: corked, it would wait for the kernel's 200 ms cork timer
        /// on every get. 50 gets each answered that late take 10 s; promptly, well under 5.
        @Test func aGetRightAfterAnAckIsAnsweredPromptly() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("getack")
            try await channel.declareQueue(queue, durable: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            for index in 0..<50 { try await channel.publish(Array("m\(index)".utf8), exchange: "", routingKey: queue) }

            let started = ContinuousClock.now
            var received = 0
            while let delivery = try await channel.get(queue: queue) {
                try channel.ack(delivery)
                received += 1
            }
            let elapsed = ContinuousClock.now - started
            #expect(received == 50)
            #expect(elapsed < .seconds(5), "50 get + ack took \(elapsed)")
        }

        /// Publishes racing `close()` from another task are all answered (confirmed or
        /// failed with `.closed`): none is dropped with the rest of the I/O thread's batch.
        @Test func publishesRacingACloseAreAllAnswered() async throws {
            let connection = try await AMQPConnection.forTests()
            let channel = try await connection.openChannel()
            let sender = Task {
                var all: [PublishConfirmation] = []
                for index in 0..<5_000 {
                    all.append(channel.send(Array("x".utf8), exchange: "", routingKey: "warren.nowhere"))
                    if index % 25 == 0 { await Task.yield() }
                }
                return all
            }
            try await Task.sleep(for: .milliseconds(2))
            await connection.close()
            let all = await sender.value
            try await eventually(timeout: .seconds(10), "every confirmation settled") { all.allSatisfy { $0.isSettled } }
        }

        /// A confirmation fails exactly as `publish` would: unroutable mandatory, missing exchange.
        @Test func sendConfirmationsCarryFailures() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let returned = channel.send(Array("x".utf8), exchange: "amq.topic", routingKey: TestEnvironment.uniqueName("nobody"), mandatory: true)
            let missing = channel.send(Array("x".utf8), exchange: TestEnvironment.uniqueName("missing"), routingKey: "k")
            // Two tasks awaiting the same confirmation both see the failure.
            async let first: AMQPError? = { do { try await missing.confirmed(); return nil } catch { return error as? AMQPError } }()
            async let second: AMQPError? = { do { try await missing.confirmed(); return nil } catch { return error as? AMQPError } }()
            let (a, b) = await (first, second)
            #expect(a?.code == .channelClosed && a?.replyCode == 404)
            #expect(b?.code == .channelClosed)
            let error = try await #require(throws: AMQPError.self) { try await returned.confirmed() }
            #expect(error.code == .publishReturned && error.replyCode == 312)
        }

        @Test func unroutableMandatoryPublishFailsAsReturned() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let exchange = TestEnvironment.uniqueName("unroutable")
            try await channel.declareExchange(exchange, type: "topic", durable: false, autoDelete: false)
            defer { Task { try? await channel.deleteExchange(exchange) } }

            let error = try await #require(throws: AMQPError.self) {
                try await channel.publish(Array("x".utf8), exchange: exchange, routingKey: "nobody.listens", mandatory: true)
            }
            #expect(error.code == .publishReturned)
            #expect(error.replyCode == 312)

            // The same channel goes on working, and a routable mandatory publish succeeds.
            let queue = TestEnvironment.uniqueName("routable")
            try await channel.declareQueue(queue, durable: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            try await channel.bindQueue(queue, to: exchange, routingKey: "somebody.#")
            try await channel.publish(Array("y".utf8), exchange: exchange, routingKey: "somebody.listens", mandatory: true)
            #expect(try await channel.queueInfo(queue).messageCount == 1)
        }

        @Test func publishToMissingExchangeFailsWith404AndTheChannelRecovers() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let error = try await #require(throws: AMQPError.self) {
                try await channel.publish(Array("x".utf8), exchange: TestEnvironment.uniqueName("missing"), routingKey: "k")
            }
            #expect(error.code == .channelClosed)
            #expect(error.replyCode == 404)

            let queue = TestEnvironment.uniqueName("after404")
            try await channel.declareQueue(queue, durable: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            try await channel.publish(Array("ok".utf8), exchange: "", routingKey: queue)
            #expect(try await channel.queueInfo(queue).messageCount == 1)
            #expect(connection.state == .connected(endpoint: try AMQPEndpoint(url: TestEnvironment.amqpURL).redactedDescription))
        }

        @Test func inequivalentRedeclarationReports406() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("inequivalent")
            try await channel.declareQueue(queue, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 5])
            defer { Task { try? await channel.deleteQueue(queue) } }
            let error = try await #require(throws: AMQPError.self) {
                try await channel.declareQueue(queue, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 9])
            }
            #expect(error.code == .channelClosed)
            #expect(error.replyCode == 406)
            #expect(error.replyText?.contains("x-delivery-limit") == true)
            // The channel was reopened; the queue is untouched.
            #expect(try await channel.queueInfo(queue).name == queue)
        }

        @Test func queuedAcksNeverSettleADeliveryTheCallerSkipped() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let setup = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("gaps")
            try await setup.declareQueue(queue, durable: false)
            defer { Task { _ = try? await setup.deleteQueue(queue) } }
            for index in 0..<50 {
                try await setup.publish(Array("\(index)".utf8), exchange: "", routingKey: queue, properties: AMQPProperties(messageID: "\(index)"))
            }
            let channel = try await connection.openChannel()
            let consumer = try await channel.consume(queue: queue, prefetch: 100)
            var seen = 0
            for try await delivery in consumer {
                let index = Int(delivery.properties.messageID!)!
                if index % 7 != 3 { try channel.ack(delivery) }  // skip 3, 10, 17, 24, 31, 38, 45
                seen += 1
                if seen == 50 { break }
            }
            // Closing the channel returns what it did not settle to the queue: exactly the skipped ones.
            await channel.close()
            var back: [Int] = []
            try await eventually("unsettled deliveries are back in the queue") {
                while let delivery = try await setup.get(queue: queue) {
                    back.append(Int(delivery.properties.messageID!)!)
                    try setup.ack(delivery)
                }
                return back.count >= 7
            }
            #expect(back.sorted() == [3, 10, 17, 24, 31, 38, 45])
        }

        @Test func rejectWithoutRequeueReachesTheDeadLetterExchange() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let dlx = TestEnvironment.uniqueName("dlx")
            let dlq = TestEnvironment.uniqueName("dlq")
            let queue = TestEnvironment.uniqueName("work")
            try await channel.declareExchange(dlx, type: "fanout", durable: false)
            try await channel.declareQueue(dlq, durable: false)
            try await channel.bindQueue(dlq, to: dlx, routingKey: "")
            try await channel.declareQueue(queue, arguments: [
                "x-queue-type": "quorum", "x-dead-letter-exchange": .string(dlx), "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            ])
            defer {
                Task {
                    _ = try? await channel.deleteQueue(queue)
                    _ = try? await channel.deleteQueue(dlq)
                    try? await channel.deleteExchange(dlx)
                }
            }
            try await channel.publish(Array("poison".utf8), exchange: "", routingKey: queue, properties: AMQPProperties(deliveryMode: 2, messageID: "p1"))

            let consumer = try await channel.consume(queue: queue, prefetch: 10)
            var iterator = consumer.makeAsyncIterator()
            let delivery = try #require(try await iterator.next())
            #expect(delivery.properties.messageID == "p1")
            try channel.reject(delivery, requeue: false)

            // basic.get on a channel of its own: `channel` has a consumer (refused there).
            let reader = try await connection.openChannel()
            var deadLettered: AMQPDelivery?
            try await eventually("the message reaches the dead-letter queue") {
                deadLettered = try await reader.get(queue: dlq)
                return deadLettered != nil
            }
            #expect(deadLettered?.body == Array("poison".utf8))
            #expect(deadLettered?.properties.messageID == "p1")
            #expect(deadLettered?.properties.headers?["x-death"] != nil)
            try await consumer.cancel()
        }

        @Test func anIdleConnectionWithTwoSecondHeartbeatsStaysUp() async throws {
            let connection = try await AMQPConnection.forTests(url: TestEnvironment.amqpURL + "?heartbeat=2")
            defer { Task { await connection.close() } }
            let states = Task {
                var seen: [AMQPConnectionState] = []
                for await state in connection.stateUpdates() { seen.append(state) }
                return seen
            }
            try await Task.sleep(for: .seconds(10))
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("idle")
            try await channel.declareQueue(queue, durable: false, exclusive: true)
            try await channel.publish(Array("still here".utf8), exchange: "", routingKey: queue)
            await connection.close()
            let seen = await states.value
            #expect(!seen.contains { if case .reconnecting = $0 { true } else { false } }, "connection dropped while idle: \(seen)")
        }

        @Test func closedByTheBrokerTheConnectionRecoversAndConsumptionResumes() async throws {
            let name = TestEnvironment.uniqueName("closeme")
            try await assertConsumptionSurvives(connectionName: name) {
                let listing = try TestEnvironment.services("ctl", "list_connections", "pid", "client_properties", "--no-table-headers", "--silent")
                let pids = listing.split(separator: "\n").filter { $0.contains(name) }.compactMap { $0.split(separator: "\t").first }
                #expect(!pids.isEmpty, "connection \(name) not listed by rabbitmqctl")
                for pid in pids { try TestEnvironment.services("ctl", "close_connection", String(pid), "test closes the connection") }
            }
        }

        @Test func aBrokerRestartIsRecoveredWithNothingLost() async throws {
            try await assertConsumptionSurvives(connectionName: TestEnvironment.uniqueName("restart")) {
                try TestEnvironment.services("restart", "rabbitmq")
            }
        }

        /// Publishes 200 persistent messages to a durable quorum queue around `disruption`,
        /// consuming all the while on the same connection, and checks every one arrives.
        private func assertConsumptionSurvives(connectionName: String, disruption: () async throws -> Void) async throws {
            let connection = try await AMQPConnection.forTests(name: connectionName)
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("survive")
            try await channel.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
            let consumerChannel = try await connection.openChannel()
            let consumer = try await consumerChannel.consume(queue: queue, prefetch: 50)
            let received = Task {
                var ids = Set<String>()
                for try await delivery in consumer {
                    do {
                        try consumerChannel.ack(delivery)
                    } catch let error as AMQPError where error.code == .staleDelivery {
                        continue  // requeued by the broker; it comes again
                    }
                    ids.insert(delivery.properties.messageID ?? "")
                    if ids.count == 200 { break }
                }
                return ids
            }

            func publish(_ range: Range<Int>) async throws {
                for index in range {
                    // A publish that fails (connection lost mid-flight) is retried, as a caller would.
                    try await eventually("publish \(index)") {
                        do {
                            try await channel.publish(Array("m\(index)".utf8), exchange: "", routingKey: queue,
                                                      properties: AMQPProperties(deliveryMode: 2, messageID: "\(index)"), timeout: .seconds(10))
                            return true
                        } catch let error as AMQPError where error.code == .connectionLost || error.code == .timeout {
                            return false
                        }
                    }
                }
            }
            try await publish(0..<100)
            try await disruption()
            try await eventually(timeout: .seconds(60), "reconnected") {
                if case .connected = connection.state { return true } else { return false }
            }
            try await publish(100..<200)
            let ids = try await withThrowingTaskGroup(of: Set<String>?.self) { group in
                group.addTask { try await received.value }
                group.addTask { try await Task.sleep(for: .seconds(60)); return nil }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
            received.cancel()
            #expect(ids == Set((0..<200).map(String.init)), "missing: \(Set((0..<200).map(String.init)).subtracting(ids ?? []).sorted())")
            _ = try? await channel.deleteQueue(queue)
        }

        @Test func aMemoryAlarmIsReportedAsBlockedAndPublishesTimeOut() async throws {
            let connection = try await AMQPConnection.forTests()
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("alarm")
            try await channel.declareQueue(queue, durable: false)
            defer { Task { try? await channel.deleteQueue(queue) } }

            try TestEnvironment.services("ctl", "set_vm_memory_high_watermark", "0.000001")
            do {
                // RabbitMQ blocks a connection (and says so) when it publishes during the alarm:
                // that publish is written but never confirmed, so it fails by its timeout.
                try await eventually("the alarm is raised") {
                    (try TestEnvironment.services("ctl", "status")).contains("Memory alarm")
                }
                let started = ContinuousClock.now
                let first = try await #require(throws: AMQPError.self) {
                    try await channel.publish(Array("first".utf8), exchange: "", routingKey: queue, timeout: .seconds(2))
                }
                #expect(first.code == .timeout)
                #expect(ContinuousClock.now - started < .seconds(10))
                try await eventually("the connection reports blocked") {
                    if case .blocked = connection.state { return true } else { return false }
                }
                // While blocked, publishes are held back and fail by their own timeout.
                let held = try await #require(throws: AMQPError.self) {
                    try await channel.publish(Array("held".utf8), exchange: "", routingKey: queue, timeout: .seconds(1))
                }
                #expect(held.code == .timeout)
                #expect(held.context.contains("blocked"))

                // A publish waiting when the alarm clears goes through.
                let waiting = Task { try await channel.publish(Array("released".utf8), exchange: "", routingKey: queue, timeout: .seconds(30)) }
                try await eventually("the publish is held") { connection.heldPublishCount == 1 }
                try TestEnvironment.services("ctl", "set_vm_memory_high_watermark", "0.4")
                try await waiting.value
            } catch {
                _ = try? TestEnvironment.services("ctl", "set_vm_memory_high_watermark", "0.4")
                throw error
            }
            try await eventually("unblocked") {
                if case .connected = connection.state { return true } else { return false }
            }
            // "first" timed out on our side but the broker took it once unblocked; "held" never left.
            let bodies = try await drain(channel, queue)
            #expect(bodies.contains("released"))
            #expect(!bodies.contains("held"))
        }

        private func drain(_ channel: AMQPChannel, _ queue: String) async throws -> [String] {
            var bodies: [String] = []
            while let delivery = try await channel.get(queue: queue) {
                bodies.append(String(decoding: delivery.body, as: UTF8.self))
                try channel.ack(delivery)
            }
            return bodies
        }

        @Test func tlsWithTheProjectCAVerifiesThePeer() async throws {
            let ca = "\(TestEnvironment.tlsDirectory)/ca.pem"
            let connection = try await AMQPConnection.forTests(url: "amqps://guest:guest@localhost:5671/%2f?cacertfile=\(ca)")
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("tls")
            try await channel.declareQueue(queue, durable: false, exclusive: true)
            try await channel.publish(Array("secret".utf8), exchange: "", routingKey: queue)
            #expect(try await channel.get(queue: queue)?.body == Array("secret".utf8))
        }

        @Test func tlsWithClientCertificate() async throws {
            let dir = TestEnvironment.tlsDirectory
            let connection = try await AMQPConnection.forTests(
                url: "amqps://guest:guest@localhost:5671/%2f?cacertfile=\(dir)/ca.pem&certfile=\(dir)/client.pem&keyfile=\(dir)/client-key.pem")
            await connection.close()
        }

        @Test func tlsWithTheWrongCAFailsClearly() async throws {
            let error = try await #require(throws: AMQPError.self) {
                _ = try await AMQPConnection.forTests(url: "amqps://guest:guest@localhost:5671/%2f?cacertfile=\(TestEnvironment.tlsDirectory)/wrong-ca.pem")
            }
            #expect(error.code == .tls)
            #expect(error.description.lowercased().contains("verif"))
        }

        /// No cacertfile: the broker is verified against SSL_CERT_FILE (here the project's
        /// CA) or the system bundle, which does not know the project's CA.
        @Test func tlsWithoutACAFileVerifiesAgainstTheSystemBundle() async throws {
            func dlqList(_ extra: [String: String]) throws -> (Int32, String) {
                try HTTPServerTests.warren(
                    ["dlq", "list", "--file", TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path],
                    environment: ["WARREN_AMQP_URL": "amqps://guest:guest@localhost:5671/%2f?connection_timeout=5000"].merging(extra) { $1 })
            }
            let (trusted, output) = try dlqList(["SSL_CERT_FILE": "\(TestEnvironment.tlsDirectory)/ca.pem"])
            #expect(trusted == 0, "\(output)")
            let (untrusted, error) = try dlqList(["SSL_CERT_FILE": ""])
            #expect(untrusted == 1 && error.lowercased().contains("verif"), "\(error)")
        }

        @Test func tlsWithTheWrongHostnameFailsClearly() async throws {
            let error = try await #require(throws: AMQPError.self) {
                _ = try await AMQPConnection.forTests(url: "amqps://guest:guest@127.0.0.1:5671/%2f?cacertfile=\(TestEnvironment.tlsDirectory)/ca.pem")
            }
            #expect(error.code == .tls)
            #expect(error.description.lowercased().contains("hostname"))
        }

        @Test func wrongPasswordIsAnAuthenticationError() async throws {
            let error = try await #require(throws: AMQPError.self) {
                _ = try await AMQPConnection.forTests(url: "amqp://guest:wrong@127.0.0.1:5672/%2f")
            }
            #expect(error.code == .authenticationFailed)
            #expect(error.replyCode == 403)
            #expect(!error.description.contains("wrong"), "the password leaked into the error")
        }

        /// `startsWithoutBroker`: a first connection the network refuses is retried like a
        /// lost one (publishes wait, then go through once it is up); refused credentials
        /// still stop it, since no retry can fix them.
        @Test func aConnectionAllowedToStartWithoutTheBrokerConnectsWhenItAppears() async throws {
            let proxy = try FaultProxy(upstreamPort: 5672)
            defer { proxy.stop() }
            proxy.stall()  // accepted, then silence: the handshake times out
            let started = ContinuousClock.now
            let connection = try await AMQPConnection.forTests(url: "amqp://guest:guest@127.0.0.1:\(proxy.port)/%2f?connection_timeout=500") {
                $0.startsWithoutBroker = true
            }
            defer { Task { await connection.close() } }
            #expect(ContinuousClock.now - started < .seconds(5), "connect returns once the first attempt failed")
            guard case .reconnecting(let attempt, let lastError) = connection.state else {
                Issue.record("expected reconnecting, got \(connection.state)")
                return
            }
            #expect(lastError.code == .connectionFailed)
            #expect(attempt == 1, "the first connection was the first failed attempt")
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("late")
            let waiting = Task { try await channel.publish(Array("first".utf8), exchange: "", routingKey: queue, properties: AMQPProperties(), timeout: .seconds(30)) }
            try await Task.sleep(for: .seconds(1))
            proxy.reset()  // let the next attempt through
            try await eventually("connected through the proxy") { if case .connected = connection.state { true } else { false } }
            try await waiting.value  // held while disconnected, confirmed after (unroutable to the default exchange is still confirmed)
            try await channel.declareQueue(queue, durable: false, autoDelete: false)
            defer { Task { try? await channel.deleteQueue(queue) } }
            try await channel.publish(Array("second".utf8), exchange: "", routingKey: queue, properties: AMQPProperties())
            #expect(try await channel.queueInfo(queue).messageCount == 1)

            let refused = try await #require(throws: AMQPError.self) {
                _ = try await AMQPConnection.forTests(url: "amqp://guest:wrong@127.0.0.1:5672/%2f") { $0.startsWithoutBroker = true }
            }
            #expect(refused.code == .authenticationFailed, "bad credentials are not waited out")
        }

        @Test func noBrokerListeningFailsFastWithConnectionFailed() async throws {
            let started = ContinuousClock.now
            let error = try await #require(throws: AMQPError.self) {
                _ = try await AMQPConnection.forTests(url: "amqp://guest:guest@127.0.0.1:1/%2f?connection_timeout=2000")
            }
            #expect(error.code == .connectionFailed)
            #expect(ContinuousClock.now - started < .seconds(5))
        }

        @Test func failoverUsesTheNextURL() async throws {
            let connection = try await AMQPConnection.forTests(url: "amqp://guest:guest@127.0.0.1:1/%2f?connection_timeout=1000," + TestEnvironment.amqpURL)
            defer { Task { await connection.close() } }
            guard case .connected(let endpoint) = connection.state else { throw TestFailure("not connected: \(connection.state)") }
            #expect(endpoint.contains(":5672"))
        }

        @Test func stalePublishesFailWhenTheConnectionCloses() async throws {
            let connection = try await AMQPConnection.forTests()
            let channel = try await connection.openChannel()
            await connection.close()
            let error = try await #require(throws: AMQPError.self) {
                try await channel.publish(Array("late".utf8), exchange: "", routingKey: "nowhere")
            }
            #expect(error.code == .closed)
        }
    }
}
