import Foundation
import Handlers
import SharedState
import Webhooks
import Synchronization
import ProviderFakes
import Testing
import WarrenCore

extension Integration {
    /// What Redis shares between Warren processes, shown with real processes (`warren
    /// consume`, `warren serve`), the real Redis of `scripts/services`, and its outages.
    @Suite struct SharedStateTests {
        typealias Server = HTTPServerTests.Server

        /// Redis for the processes under test; every other setting as the suite's environment.
        static let withRedis = ["WARREN_REDIS_URL": TestEnvironment.redisURL]
        /// A Redis that is never there (nothing listens on the port).
        static let deadRedis = ["WARREN_REDIS_URL": "redis://127.0.0.1:6390/0"]

        /// A Stripe `payment_intent.succeeded` event for `user`, as Stripe posts it.
        static func stripePayment(id: String, user: String) -> String {
            """
            {"id":"\(id)","object":"event","type":"payment_intent.succeeded","created":\(Int(Date().timeIntervalSince1970)),
             "data":{"object":{"id":"pi_\(id)","object":"payment_intent","amount":100,"amount_received":100,"currency":"eur",
             "metadata":{"user_id":"\(user)"}}}}
            """
        }

        static func count(_ mail: [FakeSendGrid.Mail], from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Int {
            mail.filter { $0.acceptedAt >= start && $0.acceptedAt < end }.count
        }

        @Test func twoEmailConsumersShareOneSendGridBudgetAndKeepWorkingWithoutRedis() async throws {
            let harness = try await ConsumerHarness.make(consumer: "email.notifications", bindings: ["user.created", "payment.succeeded", "payment.failed"])
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            // Enough welcome emails that both processes are busy for the whole test.
            try await harness.publish((0..<900).map { userCreated(TestEnvironment.uniqueName("budget-\($0)"), email: "u\($0)@example.com") })
            let environment = Self.withRedis.merging([
                "SENDGRID_API_KEY": fake.apiKey, "WARREN_SENDGRID_URL": fake.baseURL, "WARREN_SENDGRID_RATE": "10",
            ]) { $1 }
            let processes = [try WarrenProcess.consume(harness, environment: environment), try WarrenProcess.consume(harness, environment: environment)]
            var redisDown = false
            defer {
                for process in processes { _ = process.kill(SIGKILL) }
                if redisDown { _ = try? TestEnvironment.services("start", "redis") }
            }
            try await eventually("the first email") { !fake.mail.isEmpty }
            let start = fake.mail.map(\.acceptedAt).min()!

            // 1. Shared: 10 per second for both together, plus one bucket of burst, over 20 s.
            try await Task.sleep(until: start + .seconds(20))
            let shared = Self.count(fake.mail, from: start, to: start + .seconds(20))
            #expect(shared <= 10 * 20 + 10 + 2, "\(shared) emails in 20 s with a shared budget of 10/s")
            #expect(shared >= 10 * 20 * 8 / 10, "\(shared) emails in 20 s: the budget should be used")

            // 2. Redis killed: work goes on, each process at its own 10/s.
            try TestEnvironment.services("kill", "redis")
            redisDown = true
            let killedAt = ContinuousClock.now
            try await Task.sleep(for: .seconds(8))
            try TestEnvironment.services("start", "redis")
            redisDown = false
            let backAt = ContinuousClock.now
            let alone = Self.count(fake.mail, from: killedAt + .seconds(1), to: backAt)
            let outage = backAt - killedAt - .seconds(1)
            let seconds = outage / .seconds(1)
            #expect(Double(alone) > 10 * seconds * 1.3, "\(alone) emails in \(outage) without Redis: each process should use its own 10/s")
            #expect(Double(alone) <= 2 * (10 * seconds + 10) + 2, "\(alone) emails in \(outage) without Redis")

            // 3. Redis back (the clients probe every second): shared again.
            let sharedAgainFrom = backAt + .seconds(2)
            try await Task.sleep(until: sharedAgainFrom + .seconds(8))
            let again = Self.count(fake.mail, from: sharedAgainFrom, to: sharedAgainFrom + .seconds(8))
            #expect(again <= 10 * 8 + 10 + 2, "\(again) emails in 8 s once Redis was back")
            #expect(again >= 10 * 8 * 7 / 10, "\(again) emails in 8 s once Redis was back: work goes on")
            #expect(try await harness.messages(in: harness.spec.queueName) > 0, "the consumers never ran out of work (the rates were limits, not the supply)")
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func aRevokedKeyIsRefusedByEveryReplicaWithinASecond() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let name = TestEnvironment.uniqueName("replicated")
            let key = try HTTPServerTests.createKey(name, "--events", "user.*")
            // A long local cache: only the invalidation through Redis can explain a prompt refusal.
            let cached = ["WARREN_HTTP_KEY_CACHE": "60"]
            let replicas = [
                try await Server.start(harness, environment: Self.withRedis.merging(cached) { $1 }),
                try await Server.start(harness, environment: Self.withRedis.merging(cached) { $1 }),
            ]
            // Without Redis a replica keeps its own copy for WARREN_HTTP_KEY_CACHE.
            let alone = try await Server.start(harness, environment: Self.deadRedis.merging(cached) { $1 })
            defer { for server in replicas + [alone] { _ = server.stop() } }
            for server in replicas + [alone] {
                #expect(try await server.publish(HTTPServerTests.userJSON("before"), key: key).status == 202)
            }
            let (status, output) = try HTTPServerTests.warren(["keys", "revoke", name], environment: Self.withRedis)
            #expect(status == 0 && output.contains("revoked \(name)") && !output.contains("warning"), "\(output)")
            let revokedAt = ContinuousClock.now
            for (index, server) in replicas.enumerated() {
                try await eventually(timeout: .seconds(1), "replica \(index) refuses the revoked key") {
                    try await server.publish(HTTPServerTests.userJSON("after"), key: key).status == 401
                }
            }
            #expect(ContinuousClock.now - revokedAt < .seconds(1))
            #expect(try await alone.publish(HTTPServerTests.userJSON("after"), key: key).status == 202, "the control: a cached copy without Redis")
        }

        @Test func aWebhookDeliveredToTwoReplicasAtOnceIsPublishedOnce() async throws {
            // No consumer: the queue shows how many times the event was published.
            let harness = try await ConsumerHarness.make(consumer: "payments.ledger", bindings: ["payment.*"])
            defer { Task { await harness.tearDown() } }
            let secret = "whsec_replay_\(UUID().uuidString)"
            let environment = Self.withRedis.merging(["STRIPE_WEBHOOK_SECRET": secret]) { $1 }
            let replicas = [try await Server.start(harness, environment: environment), try await Server.start(harness, environment: environment)]
            defer { for server in replicas { _ = server.stop() } }
            for round in 0..<5 {
                let body = Self.stripePayment(id: "evt_\(round)_\(UUID().uuidString.prefix(12))", user: "usr_replay")
                let signature = try HTTPServerTests.stripeSignature(body, secret: secret)
                // The same delivery, four times to each replica, all at once.
                let answers = try await withThrowingTaskGroup(of: HTTPServerTests.Answer.self) { group in
                    for index in 0..<8 {
                        group.addTask {
                            try await replicas[index % 2].request("POST", "/webhooks/stripe", body: Array(body.utf8), headers: ["Stripe-Signature": signature])
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let published = answers.filter { $0.status == 200 && $0.json["duplicate"] == nil }
                let others = answers.filter { ($0.status == 200 && $0.json["duplicate"] == true) || ($0.status == 409 && $0.errorCode == "in_progress" && $0.retryAfter == "1") }
                #expect(published.count == 1 && others.count == 7, "round \(round): \(answers.map { "\($0.status) \($0.json)" })")
            }
            // Every answer is in, and a 200 that published came after the broker's confirm:
            // the queue holds whatever was published.
            #expect(try await harness.messages(in: harness.spec.queueName) == 5, "five deliveries, each published once")
        }

        @Test func nothingFailsWhileRedisIsUnreachable() async throws {
            let harness = try await ConsumerHarness.make(consumer: "payments.ledger", bindings: ["payment.*", "user.*"])
            defer { Task { await harness.tearDown() } }
            let name = TestEnvironment.uniqueName("noredis")
            let key = try HTTPServerTests.createKey(name, "--events", "user.*", "--rate", "3")
            let secret = "whsec_dead_\(UUID().uuidString)"
            let server = try await Server.start(harness, environment: Self.deadRedis.merging(["STRIPE_WEBHOOK_SECRET": secret]) { $1 })
            defer { _ = server.stop() }
            var statuses: [Int] = []
            for index in 0..<5 { statuses.append(try await server.publish(HTTPServerTests.userJSON("dead-\(index)"), key: key).status) }
            #expect(statuses == [202, 202, 202, 429, 429], "the key's rate holds per process: \(statuses)")
            let body = Self.stripePayment(id: "evt_dead_\(UUID().uuidString.prefix(12))", user: "usr_dead")
            let signature = try HTTPServerTests.stripeSignature(body, secret: secret)
            let first = try await server.request("POST", "/webhooks/stripe", body: Array(body.utf8), headers: ["Stripe-Signature": signature])
            let again = try await server.request("POST", "/webhooks/stripe", body: Array(body.utf8), headers: ["Stripe-Signature": signature])
            #expect(first.status == 200 && first.json["duplicate"] == nil && again.status == 200 && again.json["duplicate"] == true, "\(first.status) \(first.json) then \(again.status) \(again.json)")
            // Told once, shown as a metric.
            let text = try String(contentsOf: URL(string: server.base + "/metrics")!, encoding: .utf8)
            #expect(text.contains("warren_redis_up 0"), "\(text.split(separator: "\n").filter { $0.contains("redis") })")
            #expect(text.contains(#"warren_redis_fallbacks_total{use="rate_limit"}"#) && text.contains(#"warren_redis_fallbacks_total{use="replay"}"#))
            #expect(server.stop() == 0)
            #expect(server.output.components(separatedBy: "redis.unavailable").count - 1 == 1, "one log line per outage")
            #expect(try await harness.messages(in: harness.spec.queueName) == 4)
            // A revocation Redis cannot be told of: done in the database, and said so.
            let (status, output) = try HTTPServerTests.warren(["keys", "revoke", name], environment: Self.deadRedis)
            #expect(status == 0 && output.contains("revoked \(name)") && output.contains("warning: Redis could not be told"), "\(output)")
        }

        @Test func theFanOutSeesEverySubscriptionChangeAtTheNextBatchWithoutBeingTold() async throws {
            let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
            defer { Task { await harness.tearDown() } }
            // The fan-out caches the subscriptions in Redis; the store changing them tells nobody.
            let shared = try SharedStore.from(environment: Self.withRedis, logger: TestEnvironment.logger)
            harness.start(module: WebhookFanOut(shared: shared))
            let store = WebhookSubscriptions(database: harness.database, destinations: WebhookDeliveryTests.lifted)
            let type = "stripe.\(TestEnvironment.uniqueName("fan").replacingOccurrences(of: "-", with: "")).ping"
            func deliveries(_ subscription: String) async throws -> Int {
                try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscription)")
            }
            func publish(_ n: Int) async throws -> String {
                let event = CloudEvent(type: type, source: "/tests/fan-out", data: ["n": .number(Double(n))])
                try await harness.publish([event])
                try await eventually("event \(n) handled") { harness.events.applied.contains(event.id) }
                return event.id
            }
            let first = try await store.create(url: "http://127.0.0.1:9/first", eventPatterns: [type], secret: nil, description: nil).0.id
            _ = try await publish(1)
            #expect(try await deliveries(first) == 1)
            // Deleted and replaced: the next batch must not use the cached list.
            try await store.delete(first)
            let second = try await store.create(url: "http://127.0.0.1:9/second", eventPatterns: [type], secret: nil, description: nil).0.id
            _ = try await publish(2)
            #expect(try await deliveries(second) == 1)
            // Disabled: nothing more for it.
            _ = try await store.update(second, .init(enabled: false))
            _ = try await publish(3)
            #expect(try await deliveries(second) == 1)
            // Its patterns changed and enabled again: matched under the new pattern only.
            _ = try await store.update(second, .init(eventPatterns: [type + ".never"], enabled: true))
            _ = try await publish(4)
            #expect(try await deliveries(second) == 1)
            #expect(harness.events.failures.isEmpty, "\(harness.events.failures)")
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
            try await store.delete(second)
        }
    }
}
