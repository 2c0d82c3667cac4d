import Foundation
import Glibc
import Postgres
import ProviderFakes
import Testing
import WarrenCore

extension Integration {
    /// `warren consume` as a process, with a `FaultProxy` between it and the broker or the
    /// database, while events keep coming. Each scenario ends with exact counts: every
    /// event's effect exactly once (lost = 0, duplicated = 0), nothing dead-lettered, and
    /// a clean exit on SIGTERM. Other faults have their own suites: a stuck broker write
    /// (StuckPeerTests), SIGTERM during a database partition (PostgresTimeoutTests),
    /// hostile headers, a 64 MiB body and deleted retry queues (HostileHeaderTests), a
    /// SendGrid that hangs (ProviderConsumerTests), 100,000 DLQ messages (DeadLetterTests).
    @Suite(.serialized) struct FaultInjectionTests {
        static let total = 300

        /// Publishes `total` events in small steps, so that the fault lands mid-stream.
        static func publishSteadily(_ harness: ConsumerHarness, _ events: [CloudEvent]) -> Task<Void, any Error> {
            Task {
                for start in stride(from: 0, to: events.count, by: 10) {
                    try await harness.publish(Array(events[start..<min(start + 10, events.count)]))
                    try await Task.sleep(for: .milliseconds(40))
                }
            }
        }

        /// The broker vanishes behind a blackhole mid-stream and comes back: `both` stops
        /// everything both ways (the consumer counts the connection lost on the missed
        /// heartbeats); `writes` stops only what the consumer sends (acks, heartbeats: the
        /// broker closes the connection, and its close gets through). The consumer
        /// reconnects and the broker redelivers what was unacked. email.notifications (log
        /// provider) shows effects that are not idempotent by themselves: one email_log row
        /// per email sent.
        @Test(arguments: ["both", "writes"])
        func brokerBlackholedThenBackSendsEveryEmailExactlyOnce(_ blackhole: String) async throws {
            let harness = try await ConsumerHarness.make(consumer: "email.notifications", bindings: ["user.created"])
            defer { Task { await harness.tearDown() } }
            let proxy = try FaultProxy(upstreamPort: 5672)
            defer { proxy.stop() }
            let process = try WarrenProcess.consume(harness, environment: [
                "WARREN_AMQP_URL": harness.amqpURL.replacingOccurrences(of: "127.0.0.1:5672/", with: "127.0.0.1:\(proxy.port)/") + "?heartbeat=2",
            ])
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }

            let prefix = TestEnvironment.uniqueName("blackhole-amqp")
            let events = (0..<Self.total).map { userCreated("\(prefix)-\($0)", email: "\(prefix)-\($0)@example.com") }
            let emails: PostgresQuery = "SELECT count(*) FROM email_log WHERE recipient LIKE \(prefix + "-%")"
            let distinct: PostgresQuery = "SELECT count(DISTINCT recipient) FROM email_log WHERE recipient LIKE \(prefix + "-%")"
            let publishing = Self.publishSteadily(harness, events)
            try await eventually("the first emails sent") { try await harness.count(emails) >= 30 }
            proxy.stall(blackhole == "both" ? [.toUpstream, .toClient] : [.toUpstream])
            try await Task.sleep(for: .seconds(8))  // past the 2 s heartbeat's deadline: the consumer has given up on it
            let duringBlackhole = try await harness.count(emails)
            proxy.resume()
            try await publishing.value
            try await eventually(timeout: .seconds(90), "every email sent") { try await harness.count(distinct) == Self.total }
            try await Task.sleep(for: .seconds(1))  // a duplicate would land now
            let sent = try await harness.count(emails)
            let deadLettered = try await harness.messages(in: harness.spec.deadLetterQueueName)
            reportFault("broker blackholed (\(blackhole)) then back", [
                "published": Self.total, "sent before the blackhole ended": duringBlackhole, "sent": sent,
                "lost": Self.total - (try await harness.count(distinct)), "duplicated": sent - Self.total, "dead-lettered": deadLettered,
            ])
            #expect(sent == Self.total, "one email per event")
            #expect(deadLettered == 0)
            #expect(try await harness.inboxCount(ids: events.map(\.id)) == Self.total)
            exited = true
            #expect(process.kill(SIGTERM) == 0, "still running after the blackhole, and exits cleanly")
        }

        /// PostgreSQL blackholed while a batch's transaction is open, until TCP gives up on
        /// it (the proxy then cuts the connections, the server rolls the transaction back):
        /// the consumer's statement fails, the batch is retried on a new connection, and
        /// every event is applied exactly once.
        @Test func postgresBlackholedMidTransactionLosesAndDuplicatesNothing() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let proxy = try FaultProxy(upstreamPort: 5432)
            defer { proxy.stop() }
            let process = try WarrenProcess.consume(harness, environment: [
                "WARREN_DATABASE_URL": "postgresql://warren:warren@127.0.0.1:\(proxy.port)/warren",
            ])
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }

            let prefix = TestEnvironment.uniqueName("blackhole-pg")
            let events = (0..<Self.total).map { userCreated("\(prefix)-\($0)") }
            let users: PostgresQuery = "SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")"
            let publishing = Self.publishSteadily(harness, events)
            try await eventually("the first events applied") { try await harness.count(users) >= 30 }
            proxy.stall()
            try await Task.sleep(for: .seconds(3))
            let beforeReset = try await harness.count(users)
            proxy.reset()
            try await publishing.value
            try await eventually(timeout: .seconds(90), "every event applied") { try await harness.inboxCount(ids: events.map(\.id)) == Self.total }
            let applied = try await harness.count(users)
            let deadLettered = try await harness.messages(in: harness.spec.deadLetterQueueName)
            reportFault("postgres blackholed mid-transaction", [
                "published": Self.total, "applied before the reset": beforeReset, "applied": applied,
                "lost": Self.total - applied, "inbox": try await harness.inboxCount(ids: events.map(\.id)), "dead-lettered": deadLettered,
            ])
            #expect(applied == Self.total)
            #expect(deadLettered == 0)
            #expect(try await harness.messages(in: harness.spec.queueName) == 0)
            exited = true
            #expect(process.kill(SIGTERM) == 0, "still running after the reset, and exits cleanly")
        }

        /// 50 ms more each way on every PostgreSQL round trip for the whole run (a database
        /// in another zone): slower batches, the same exact result.
        @Test func postgresBehindLatencyAppliesEveryEventExactlyOnce() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let proxy = try FaultProxy(upstreamPort: 5432)
            defer { proxy.stop() }
            proxy.delay(.milliseconds(50))
            let process = try WarrenProcess.consume(harness, environment: [
                "WARREN_DATABASE_URL": "postgresql://warren:warren@127.0.0.1:\(proxy.port)/warren",
            ])
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }
            let prefix = TestEnvironment.uniqueName("latency-pg")
            let events = (0..<Self.total).map { userCreated("\(prefix)-\($0)") }
            let started = ContinuousClock.now
            try await Self.publishSteadily(harness, events).value
            try await eventually(timeout: .seconds(120), "every event applied") { try await harness.inboxCount(ids: events.map(\.id)) == Self.total }
            let applied = try await harness.count("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")")
            let deadLettered = try await harness.messages(in: harness.spec.deadLetterQueueName)
            reportFault("postgres behind 50 ms latency", [
                "published": Self.total, "applied": applied, "lost": Self.total - applied, "dead-lettered": deadLettered,
                "seconds": Int((ContinuousClock.now - started) / .seconds(1)),
            ])
            #expect(applied == Self.total)
            #expect(deadLettered == 0)
            exited = true
            #expect(process.kill(SIGTERM) == 0)
        }

        /// Each handler's effects with one pool connection (`--database-connections 1`):
        /// nothing may hold a connection while it waits for another (the email handler
        /// once kept its transaction open across the SendGrid call and deadlocked).
        @Test(arguments: ["users.projection", "payments.ledger", "email.notifications", "payments.customers", "webhooks.delivery"])
        func everyHandlerRunsOnOneDatabaseConnection(_ consumer: String) async throws {
            let bindings = consumer == "payments.ledger" ? ["payment.*"] : ["user.created"]
            let harness = try await ConsumerHarness.make(consumer: consumer, bindings: bindings)
            defer { Task { await harness.tearDown() } }
            let stripe = try await FakeStripe.start()
            defer { stripe.stop() }
            // The shipped topology disables payments.customers (it needs a Stripe key).
            let topology = NSTemporaryDirectory() + "warren-topology-\(UUID().uuidString).yaml"
            defer { try? FileManager.default.removeItem(atPath: topology) }
            let shipped = try String(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml"), encoding: .utf8)
            try shipped.replacingOccurrences(of: "enabled: false", with: "enabled: true").write(toFile: topology, atomically: true, encoding: .utf8)
            let process = try WarrenProcess.consume(harness, environment: [
                "WARREN_TOPOLOGY": topology, "STRIPE_SECRET_KEY": "sk_test_fake", "WARREN_STRIPE_URL": stripe.baseURL,
            ], arguments: ["--database-connections", "1"])
            var exited = false
            defer { if !exited { _ = process.kill(SIGKILL) } }

            let prefix = TestEnvironment.uniqueName("one-connection")
            let count = 15
            let events: [CloudEvent] = (0..<count).map { index in
                guard consumer == "payments.ledger" else { return userCreated("\(prefix)-\(index)", email: "\(prefix)-\(index)@example.com") }
                return CloudEvent(type: "payment.succeeded", source: "/tests", data: .object([
                    "payment_id": .string("\(prefix)-\(index)"), "user_id": .string("\(prefix)-user"), "amount": 1250, "currency": "EUR",
                ]))
            }
            try await harness.publish(events)
            try await eventually(timeout: .seconds(60), "every event handled") { try await harness.inboxCount(ids: events.map(\.id)) == count }
            let effects: PostgresQuery? = switch consumer {
            case "users.projection": "SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")"
            case "payments.ledger": "SELECT count(*) FROM payments WHERE payment_id LIKE \(prefix + "-%")"
            case "email.notifications": "SELECT count(*) FROM email_log WHERE recipient LIKE \(prefix + "-%")"
            case "payments.customers": "SELECT count(*) FROM payment_customers WHERE user_id LIKE \(prefix + "-%")"
            default: nil  // webhooks.delivery: no subscription matches, so the inbox is its effect
            }
            var applied = count
            if let effects { applied = try await harness.count(effects) }
            #expect(applied == count, "\(consumer)")
            reportFault("\(consumer) on one database connection", [
                "published": count, "handled": try await harness.inboxCount(ids: events.map(\.id)), "effects": applied,
                "dead-lettered": try await harness.messages(in: harness.spec.deadLetterQueueName),
            ])
            if consumer == "payments.customers" { #expect(stripe.customers.count == count) }
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
            #expect(try await harness.messages(in: harness.spec.queueName) == 0)
            exited = true
            #expect(process.kill(SIGTERM) == 0)
        }
    }
}
