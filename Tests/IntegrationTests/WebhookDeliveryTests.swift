import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Postgres
import ServiceLifecycle
import Locking
import ProviderFakes
import SharedState
import Testing
import WarrenCore
@testable import Webhooks

/// A subscriber's endpoint: real HTTP on loopback that records every request and answers
/// from a script (then 200).
final class WebhookReceiver: Sendable {
    enum Answer: Sendable {
        case status(Int)
        case hang(Duration)
        /// 200 with `Content-Length: 1000`, then a few bytes, then nothing for this long.
        case stallBody(Duration)
    }

    struct Received: Sendable {
        var headers: [String: String]
        var body: [UInt8]
        var at: ContinuousClock.Instant
        var eventID: String? { (try? JSONValue(parsing: body))?["id"]?.stringValue }
    }

    private let server: FakeProviderServer
    private let script: Mutex<[Answer]>
    private let log: Mutex<[Received]>
    private let answers = Mutex(0)
    var url: String { server.baseURL + "/hooks" }

    private init(server: FakeProviderServer, script: [Answer]) {
        self.server = server
        self.script = Mutex(script)
        self.log = Mutex([])
    }

    static func start(_ answers: [Answer] = []) async throws -> WebhookReceiver {
        let box = Box()
        let server = try await FakeProviderServer.start { router in
            router.post("/hooks") { request, _ in
                let body = try await request.body.collect(upTo: 1 << 20)
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                guard let receiver = box.receiver.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
                receiver.log.withLock { $0.append(Received(headers: headers, body: Array(body.readableBytesView), at: .now)) }
                switch receiver.script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                case .status(let status): return Response(status: .init(code: status))
                case .hang(let duration):
                    try? await Task.sleep(for: duration)
                    receiver.answers.withLock { $0 += 1 }
                    return Response(status: .internalServerError)
                case .stallBody(let duration):
                    let body = ResponseBody(contentLength: 1000) { writer in
                        try await writer.write(ByteBuffer(string: "{\"ok\":"))
                        try? await Task.sleep(for: duration)
                        try await writer.finish(nil)
                    }
                    return Response(status: .ok, body: body)
                case nil: return Response(status: .ok)
                }
            }
        }
        let receiver = WebhookReceiver(server: server, script: answers)
        box.receiver.withLock { $0 = receiver }
        return receiver
    }

    /// The receiver is made after its routes; they reach it through this.
    private final class Box: Sendable { let receiver = Mutex<WebhookReceiver?>(nil) }

    func answer(_ answers: Answer...) { script.withLock { $0 += answers } }
    var received: [Received] { log.withLock { $0 } }
    /// Requests a `.hang` answer has answered (after its wait).
    var hangsAnswered: Int { answers.withLock { $0 } }
    func stop() { server.stop() }
}

extension Integration {
    /// Outbound webhooks end to end: events through the broker into the fan-out consumer,
    /// deliveries in PostgreSQL, the dispatcher posting to receivers on loopback. Serialized:
    /// one dispatcher at a time, and each test's event types are its own.
    @Suite(.serialized) struct WebhookDeliveryTests {
        static let lifted = DestinationGuard(allowPrivate: true)

        /// A harness running the fan-out, and a dispatcher in-process that it hands its
        /// deliveries to, as in `warren consume webhooks.delivery`.
        struct Rig {
            let harness: ConsumerHarness
            let subscriptions: WebhookSubscriptions
            let type: String
            let handoff: DeliveryHandoff
            let dispatcher: (ServiceGroup, Task<Void, any Error>)

            static func start(
                policy: DeliveryPolicy = DeliveryPolicy(schedule: [.milliseconds(200), .milliseconds(200), .milliseconds(200)], timeout: .seconds(5)),
                bucket: (@Sendable (Int) -> any TokenBucket)? = nil,
                sealer: SecretSealer = .clear,
                pollInterval: Duration = .milliseconds(200)
            ) async throws -> Rig {
                let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
                let handoff = DeliveryHandoff(logger: TestEnvironment.logger)
                harness.start(module: WebhookFanOut(handoff: handoff))
                var settings = WebhookDispatcherSettings()
                settings.policy = policy
                settings.sealer = sealer
                settings.pollInterval = pollInterval
                let dispatcher =
                    if let bucket {
                        WebhookDispatcher(
                            settings: settings, database: harness.database, conninfo: TestEnvironment.databaseURL, destinations: lifted,
                            logger: TestEnvironment.logger, bucket: bucket, handoff: handoff)
                    } else {
                        WebhookDispatcher(
                            settings: settings, database: harness.database, conninfo: TestEnvironment.databaseURL, destinations: lifted,
                            logger: TestEnvironment.logger, handoff: handoff)
                    }
                let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [dispatcher], logger: TestEnvironment.logger))
                // Open catalog pattern (stripe.#): a type no other test publishes or subscribes to.
                let type = "stripe.\(TestEnvironment.uniqueName("wh").replacingOccurrences(of: "-", with: "")).ping"
                let rig = Rig(
                    harness: harness, subscriptions: WebhookSubscriptions(database: harness.database, destinations: lifted, sealer: sealer), type: type,
                    handoff: handoff, dispatcher: (group, Task { try await group.run() }))
                try await eventually("the dispatcher takes hand-offs") { handoff.isAttached }
                return rig
            }

            static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

            func publish(_ count: Int = 1) async throws -> [String] {
                let events = (0..<count).map { index in
                    var event = CloudEvent(type: type, source: "/tests/webhooks", data: ["n": .integer(Int64(index))], id: UUID().uuidString.lowercased())
                    event.traceparent = Self.traceparent
                    return event
                }
                try await harness.publish(events)
                return events.map(\.id)
            }

            func deliveries(_ subscription: String, status: String) async throws -> Int {
                try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscription) AND status = \(status)")
            }

            func stop(deleting ids: [String]) async {
                await dispatcher.0.triggerGracefulShutdown()
                _ = try? await dispatcher.1.value
                for id in ids { try? await subscriptions.delete(id) }
                await harness.tearDown()
            }
        }

        static func hexKey(of secret: String) throws -> String {
            Hex.encode(try #require(WebhookSigning.key(for: secret)))
        }

        @Test func aFailingReceiverGetsTheEventAgainWithOneWebhookIDAndVerifiableSignatures() async throws {
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start([.status(500), .status(503)])
            let (subscription, secret) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: "t")
            defer { receiver.stop() }
            let ids = try await rig.publish()
            try await eventually("delivered after two failures") { try await rig.deliveries(subscription.id, status: "delivered") == 1 }
            let received = receiver.received
            #expect(received.count == 3)
            #expect(Set(received.map { $0.headers["webhook-id"] ?? "" }).count == 1, "one webhook-id across retries")
            #expect(received.allSatisfy { $0.eventID == ids[0] })
            for request in received {
                // Verified independently of Warren's code: openssl computes both signatures.
                let id = try #require(request.headers["webhook-id"]), timestamp = try #require(request.headers["webhook-timestamp"])
                let text = String(decoding: request.body, as: UTF8.self)
                let expected = try HTTPServerTests.openssl("\(id).\(timestamp).\(text)", hexKey: try Self.hexKey(of: secret))
                #expect(request.headers["webhook-signature"] == "v1,\(expected)")
                #expect(request.headers["x-signature"] == (try HTTPServerTests.openssl(text, textKey: secret)))
                #expect(request.headers["user-agent"] == "Warren/\(WarrenVersion.current)")
                #expect(request.headers["content-type"] == "application/cloudevents+json")
                let sent = request.headers["traceparent"].flatMap { TraceContext(traceparent: $0) }
                let event = TraceContext(traceparent: Rig.traceparent)!
                #expect(sent?.traceID == event.traceID && sent?.spanID != event.spanID, "the event's trace (from its AMQP header), continued by a span of the delivery")
                #expect(abs((Int64(timestamp) ?? 0) - Int64(Date().timeIntervalSince1970)) < 60)
            }
            let log = try await rig.subscriptions.attempts(subscription.id)
            #expect(log.map(\.outcome) == ["delivered", "retry", "retry"], "newest first; logged once as delivered")
            #expect(log.map(\.statusCode) == [200, 503, 500])
            #expect(log.allSatisfy { $0.eventID == ids[0] })
            #expect(try await rig.subscriptions.get(subscription.id).failingSince == nil, "a success clears the failure record")
            await rig.stop(deleting: [subscription.id])
        }

        /// The fan-out hands what it stores straight to the dispatcher of its process,
        /// leased and with the attempt counted, except for a subscription that is failing:
        /// that one's deliveries are stored due, for a claim (which gives it fewer slots).
        @Test func theFanOutHandsItsDeliveriesToTheDispatcherExceptAFailingSubscriptions() async throws {
            let rig = try await Rig.start(pollInterval: .milliseconds(500))
            let healthy = try await WebhookReceiver.start(), dead = try await WebhookReceiver.start()
            dead.stop()
            defer { healthy.stop() }
            let (a, _) = try await rig.subscriptions.create(url: healthy.url, eventPatterns: [rig.type], secret: nil, description: "healthy")
            let (b, _) = try await rig.subscriptions.create(url: dead.url, eventPatterns: [rig.type], secret: nil, description: "failing")
            try await rig.harness.database.withConnection { connection in
                _ = try await connection.execute("UPDATE warren_webhook_subscriptions SET failing_since = now() WHERE id = \(b.id)")
            }
            let before = rig.handoff.handedOver.load(ordering: .relaxed)
            let ids = try await rig.publish(20)
            try await eventually("all recorded delivered") { try await rig.deliveries(a.id, status: "delivered") == 20 }
            #expect(Set(healthy.received.compactMap(\.eventID)) == Set(ids) && healthy.received.count == 20, "each once")
            let log = try await rig.subscriptions.attempts(a.id)
            #expect(log.count == 20 && log.allSatisfy { $0.attempt == 1 && $0.outcome == "delivered" }, "each sent once, as attempt 1")
            try await eventually("the failing one's claimed and tried") { try await rig.subscriptions.attempts(b.id).count >= 2 }
            // The healthy subscription's 20 (it has room for 32), none of the failing one's.
            #expect(rig.handoff.handedOver.load(ordering: .relaxed) - before == 20)
            await rig.stop(deleting: [a.id, b.id])
        }

        /// With no dispatcher taking hand-offs (stopped, or not started yet), the fan-out
        /// stores its deliveries due, not leased: the next dispatcher claims them at once.
        @Test func withoutADispatcherTheFanOutLeavesDeliveriesDueForTheNextOne() async throws {
            let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
            let handoff = DeliveryHandoff(logger: TestEnvironment.logger)
            harness.start(module: WebhookFanOut(handoff: handoff))
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let store = WebhookSubscriptions(database: harness.database, destinations: Self.lifted)
            let type = "stripe.\(TestEnvironment.uniqueName("wh").replacingOccurrences(of: "-", with: "")).ping"
            let (subscription, _) = try await store.create(url: receiver.url, eventPatterns: [type], secret: nil, description: "t")
            let events = (0..<3).map { CloudEvent(type: type, source: "/tests/webhooks", data: ["n": .integer(Int64($0))]) }
            try await harness.publish(events)
            try await eventually("stored") {
                try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscription.id)") == 3
            }
            #expect(
                try await harness.count(
                    "SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscription.id) AND attempts = 0 AND next_attempt_at <= now()") == 3,
                "due, no attempt counted")
            var settings = WebhookDispatcherSettings()
            settings.pollInterval = .seconds(60)
            let dispatcher = WebhookDispatcher(
                settings: settings, database: harness.database, conninfo: TestEnvironment.databaseURL, destinations: Self.lifted,
                logger: TestEnvironment.logger, handoff: handoff)
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [dispatcher], logger: TestEnvironment.logger))
            let running = Task { try await group.run() }
            try await eventually("the next dispatcher sent them") { Set(receiver.received.compactMap(\.eventID)) == Set(events.map(\.id)) }
            #expect(handoff.handedOver.load(ordering: .relaxed) == 0)
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            try? await store.delete(subscription.id)
            await harness.tearDown()
        }

        /// `WARREN_SECRETS_KEY`: a secret stored in clear before the key was set is sealed
        /// when the dispatcher starts, a new one when it is created or rotated in; the
        /// database holds neither, and every signature still verifies with the secret as
        /// given (checked with openssl, not Warren's signer).
        @Test func secretsAreSealedAtRestAndStillSign() async throws {
            let sealer = SecretSealer(keys: [Array(repeating: 7, count: 32)])
            let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let type = "stripe.\(TestEnvironment.uniqueName("wh").replacingOccurrences(of: "-", with: "")).ping"
            let (before, beforeSecret) = try await WebhookSubscriptions(database: harness.database, destinations: Self.lifted)
                .create(url: receiver.url, eventPatterns: [type], secret: nil, description: "stored before the key")
            func stored(_ id: String, in harness: ConsumerHarness) async throws -> (String, String?) {
                let row = try await harness.database.withConnection { connection in
                    try await connection.query("SELECT secret, previous_secret FROM warren_webhook_subscriptions WHERE id = \(id)")
                }
                return (try row[0].decode(String.self, "secret"), try row[0].decode(String?.self, "previous_secret"))
            }
            #expect(try await stored(before.id, in: harness).0 == beforeSecret, "no key: stored as given")
            await harness.tearDown()

            let rig = try await Rig.start(sealer: sealer)
            func stored(_ id: String) async throws -> (String, String?) { try await stored(id, in: rig.harness) }
            let (after, afterSecret) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: "t")
            try await eventually("sealed at the dispatcher's start") { try await stored(before.id).0.hasPrefix("sealed:v1:") }
            for (id, secret) in [(before.id, beforeSecret), (after.id, afterSecret)] {
                let (current, _) = try await stored(id)
                #expect(current.hasPrefix("sealed:v1:") && !current.contains(secret.dropFirst(6)))
                #expect(try sealer.open(current, subscription: id) == secret)
            }
            // The subscription made before the key gets this rig's events too.
            _ = try await rig.subscriptions.update(before.id, WebhookSubscriptions.Changes(eventPatterns: [rig.type]))
            let (_, rotated) = try await rig.subscriptions.rotate(after.id)
            #expect(try await stored(after.id).1.map { try sealer.open($0, subscription: after.id) } == afterSecret, "the previous one, sealed")
            let ids = try await rig.publish()
            try await eventually("both delivered") { receiver.received.filter { $0.eventID == ids[0] }.count == 2 }
            for request in receiver.received where request.eventID == ids[0] {
                let id = try #require(request.headers["webhook-id"]), timestamp = try #require(request.headers["webhook-timestamp"])
                let text = String(decoding: request.body, as: UTF8.self)
                let expected = try [beforeSecret, rotated, afterSecret].map { try HTTPServerTests.openssl("\(id).\(timestamp).\(text)", hexKey: try Self.hexKey(of: $0)) }
                let signatures = Set((request.headers["webhook-signature"] ?? "").split(separator: " ").map { String($0.dropFirst(3)) })
                if id == WebhookSigning.webhookID(subscription: before.id, event: ids[0]) {
                    #expect(signatures == [expected[0]])
                    #expect(request.headers["x-signature"] == (try HTTPServerTests.openssl(text, textKey: beforeSecret)))
                } else {
                    #expect(signatures == [expected[1], expected[2]], "the new secret and the rotated-out one")
                    #expect(request.headers["x-signature"] == (try HTTPServerTests.openssl(text, textKey: rotated)))
                }
            }
            await rig.stop(deleting: [before.id, after.id])
        }

        /// A dispatcher that cannot open a sealed secret (no key, or another one) does not
        /// send unsigned: the attempt fails, and the log says why.
        @Test func aSecretThatCannotBeOpenedFailsTheAttemptAndSaysWhy() async throws {
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let (subscription, _) = try await WebhookSubscriptions(
                database: rig.harness.database, destinations: Self.lifted, sealer: SecretSealer(keys: [Array(repeating: 9, count: 32)])
            ).create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: "t")
            _ = try await rig.publish()
            try await eventually("the attempt recorded") { try await !rig.subscriptions.attempts(subscription.id).isEmpty }
            let attempt = try #require(try await rig.subscriptions.attempts(subscription.id).first)
            #expect(attempt.error?.contains("WARREN_SECRETS_KEY is not set") == true, "\(attempt.error ?? "")")
            #expect(attempt.statusCode == nil)
            #expect(receiver.received.isEmpty, "nothing sent unsigned")
            await rig.stop(deleting: [subscription.id])
        }

        /// A host with several addresses: one that refuses the connection is skipped for
        /// the next, within the same attempt. The addresses are given as the guard would
        /// return them for a name (the test's resolver has only one per name); the
        /// connections, the refusal and the request are real.
        @Test func anAddressThatRefusesIsSkippedForTheHostsNextOne() async throws {
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let port = try #require(URLComponents(string: receiver.url)?.port)
            let sender = WebhookSender(destinations: Self.lifted, timeout: .seconds(5))
            let destination = Destination(url: "http://multi.test:\(port)/hooks", host: "multi.test", port: port)
            let delivery = WebhookDeliveries.Claimed(
                subscriptionID: "wh_multi", eventID: "multi-1", webhookID: "msg_multi", attempt: 1, payload: "{}", traceparent: nil,
                url: destination.url, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], failing: false)
            // Nothing listens on 127.0.0.2: refused, then 127.0.0.1 answers.
            let result = await sender.send(delivery, to: destination, addresses: ["127.0.0.2", "127.0.0.1"], trace: nil)
            #expect(result == .response(status: 200, retryAfter: nil))
            #expect(receiver.received.count == 1)
            // None answers: failed at once (not at the timeout), naming each address.
            let start = ContinuousClock.now
            let failed = await sender.send(delivery, to: destination, addresses: ["127.0.0.2", "127.0.0.3"], trace: nil)
            guard case .failed(let reason) = failed else {
                Issue.record("expected a failure, got \(failed)")
                return
            }
            #expect(reason.hasPrefix("could not connect (none of its 2 addresses)") && reason.contains("127.0.0.2") && reason.contains("127.0.0.3"), "\(reason)")
            #expect(ContinuousClock.now - start < .seconds(4), "a refusal is not waited out to the timeout")
            #expect(receiver.received.count == 1)
            await sender.shutdown()
        }

        /// A backlog makes the dispatcher analyze the deliveries table itself: planned on
        /// statistics that say it is empty (autovacuum after a quiet spell), each claim and
        /// record walks every pending row, and deliveries fall seconds behind
        /// (`StatisticsRefresh`; the effect is measured by `Benchmarks/run`). Autovacuum's
        /// own analyses are counted apart (`autoanalyze_count`).
        @Test func aBacklogMakesTheDispatcherRefreshThePlannersStatistics() async throws {
            let analyses = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'warren_webhook_deliveries'"
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: "t")
            let before = try await rig.harness.count(PostgresQuery(unsafeSQL: analyses))
            _ = try await rig.publish(100)
            try await eventually("delivered") { try await rig.deliveries(subscription.id, status: "delivered") == 100 }
            try await eventually("analyzed by the dispatcher") { try await rig.harness.count(PostgresQuery(unsafeSQL: analyses)) > before }
            await rig.stop(deleting: [subscription.id])
        }

        /// `WARREN_WEBHOOK_RATE` is one budget for every process when Redis is configured:
        /// the dispatcher takes its tokens from the bucket it is given, here one in Redis.
        @Test func theRateIsTakenFromTheBucketItIsGivenOneInRedisForEveryProcess() async throws {
            let shared = try SharedStore.from(environment: ["WARREN_REDIS_URL": TestEnvironment.redisURL], logger: TestEnvironment.logger)
            let name = TestEnvironment.uniqueName("webhooks-rate")
            // A token takes an hour to come back: the bucket's key is there when we look.
            let rig = try await Rig.start(bucket: { _ in shared.rateLimiter(name: name, rate: 1000, per: .seconds(3600)) })
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: "t")
            #expect(try HTTPServerTests.shell("redis-cli -u '\(TestEnvironment.redisURL)' EXISTS 'warren:rate:\(name)'") == "0")
            _ = try await rig.publish()
            try await eventually("delivered") { try await rig.deliveries(subscription.id, status: "delivered") == 1 }
            #expect(try HTTPServerTests.shell("redis-cli -u '\(TestEnvironment.redisURL)' EXISTS 'warren:rate:\(name)'") == "1", "a token was taken in Redis")
            await rig.stop(deleting: [subscription.id])
        }

        @Test func duringARotationBothSecretsSign() async throws {
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start()
            defer { receiver.stop() }
            let (subscription, old) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let (rotated, new) = try await rig.subscriptions.rotate(subscription.id)
            #expect(new != old && new.hasPrefix("whsec_"))
            #expect(rotated.previousSecretExpiresAt.map { $0.timeIntervalSinceNow > 86_000 } == true)
            _ = try await rig.publish()
            try await eventually("delivered") { receiver.received.count == 1 }
            let request = receiver.received[0]
            let id = try #require(request.headers["webhook-id"]), timestamp = try #require(request.headers["webhook-timestamp"])
            let signed = "\(id).\(timestamp).\(String(decoding: request.body, as: UTF8.self))"
            let expected = [
                "v1," + (try HTTPServerTests.openssl(signed, hexKey: try Self.hexKey(of: new))),
                "v1," + (try HTTPServerTests.openssl(signed, hexKey: try Self.hexKey(of: old))),
            ]
            #expect(request.headers["webhook-signature"] == expected.joined(separator: " "), "new first, then old")
            #expect(request.headers["x-signature"] == (try HTTPServerTests.openssl(String(decoding: request.body, as: UTF8.self), textKey: new)))
            await rig.stop(deleting: [subscription.id])
        }

        @Test func goneDisablesTheSubscriptionAndAnnouncesIt() async throws {
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start([.status(410)])
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: nil)
            _ = try await rig.publish()
            try await eventually("disabled") { try await !rig.subscriptions.get(subscription.id).enabled }
            #expect(try await rig.subscriptions.get(subscription.id).disabledReason == "the endpoint answered 410 Gone")
            #expect(try await rig.deliveries(subscription.id, status: "failed") == 1)
            #expect(
                try await rig.harness.count(
                    "SELECT count(*) FROM warren_outbox WHERE event_type = 'webhook.endpoint.disabled' AND event LIKE \("%" + subscription.id + "%")") == 1)
            // Disabled: new events are not fanned out to it (once the fan-out committed the event).
            let later = try await rig.publish()
            try await eventually("the fan-out took the event") { try await rig.harness.inboxCount(ids: later) == 1 }
            #expect(try await rig.harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscription.id)") == 1)
            #expect(receiver.received.count == 1)
            await rig.stop(deleting: [subscription.id])
        }

        @Test func anEndpointFailingForTheWholePeriodIsDisabledAndItsLastDeliveryFailed() async throws {
            let rig = try await Rig.start(policy: DeliveryPolicy(schedule: [.milliseconds(300), .milliseconds(300)], timeout: .seconds(5), disableAfter: .seconds(1)))
            let receiver = try await WebhookReceiver.start(Array(repeating: .status(500), count: 100))
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: nil)
            _ = try await rig.publish()
            try await eventually("failed after the last attempt") { try await rig.deliveries(subscription.id, status: "failed") == 1 }
            #expect(receiver.received.count == 3, "one attempt and two retries")
            #expect(try await rig.subscriptions.attempts(subscription.id).map(\.outcome) == ["failed", "retry", "retry"])
            #expect(try await rig.subscriptions.get(subscription.id).failingSince != nil)
            // Still failing a second later: disabled, with the reason, and announced.
            try await Task.sleep(for: .seconds(1))
            _ = try await rig.publish()
            try await eventually("disabled") { try await !rig.subscriptions.get(subscription.id).enabled }
            #expect(try await rig.subscriptions.get(subscription.id).disabledReason?.hasPrefix("failing since ") == true)
            #expect(
                try await rig.harness.count(
                    "SELECT count(*) FROM warren_outbox WHERE event_type = 'webhook.endpoint.disabled' AND event LIKE \("%" + subscription.id + "%")") == 1)
            await rig.stop(deleting: [subscription.id])
        }

        @Test func aHangingReceiverDoesNotDelayAnotherSubscriber() async throws {
            let rig = try await Rig.start(policy: DeliveryPolicy(schedule: [.seconds(30)], timeout: .seconds(4)))
            let hanging = try await WebhookReceiver.start(Array(repeating: .hang(.seconds(10)), count: 20))
            let fast = try await WebhookReceiver.start()
            defer { hanging.stop(); fast.stop() }
            let (a, _) = try await rig.subscriptions.create(url: hanging.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let (b, _) = try await rig.subscriptions.create(url: fast.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let started = ContinuousClock.now
            let ids = try await rig.publish(20)
            try await eventually("the fast subscriber got all 20") { Set(fast.received.compactMap(\.eventID)) == Set(ids) }
            let took = ContinuousClock.now - started
            // Measured: the fast one is done long before the hanging one's first timeout (4 s).
            #expect(took < .seconds(3), "fast subscriber took \(took) while the other hung")
            #expect(hanging.received.count <= 8, "at most the per-subscription concurrency hangs at once")
            try await eventually("the hanging one's attempts time out and are retried later") {
                try await rig.subscriptions.attempts(a.id).contains { $0.error == "no response within the timeout" && $0.outcome == "retry" }
            }
            await rig.stop(deleting: [a.id, b.id])
        }

        @Test func aReceiverThatStallsItsBodyDoesNotHoldTheSlot() async throws {
            let rig = try await Rig.start(policy: DeliveryPolicy(schedule: [.milliseconds(200)], timeout: .seconds(2)))
            let receiver = try await WebhookReceiver.start([.stallBody(.seconds(30))])
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let started = ContinuousClock.now
            _ = try await rig.publish()
            // The 200 came with its head: delivered, and recorded once the deadline cut the body.
            try await eventually(timeout: .seconds(10), "recorded") { try await rig.deliveries(subscription.id, status: "delivered") == 1 }
            #expect(ContinuousClock.now - started < .seconds(8))
            await rig.stop(deleting: [subscription.id])
        }

        @Test func deletingASubscriptionWhileItsRequestIsInFlightLeavesTheOthersRecorded() async throws {
            let rig = try await Rig.start(policy: DeliveryPolicy(schedule: [.milliseconds(200)], timeout: .seconds(3)))
            let hanging = try await WebhookReceiver.start([.hang(.seconds(2))])
            let healthy = try await WebhookReceiver.start()
            defer { hanging.stop(); healthy.stop() }
            let (doomed, _) = try await rig.subscriptions.create(url: hanging.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let (kept, _) = try await rig.subscriptions.create(url: healthy.url, eventPatterns: [rig.type], secret: nil, description: nil)
            _ = try await rig.publish()
            try await eventually("the doomed request is in flight") { hanging.received.count == 1 }
            try await rig.subscriptions.delete(doomed.id)
            // Its answer comes back to nothing; recording goes on for everyone else.
            try await eventually("the doomed request answered") { hanging.hangsAnswered == 1 }
            _ = try await rig.publish(3)
            try await eventually("the kept subscription's deliveries are all recorded") { try await rig.deliveries(kept.id, status: "delivered") == 4 }
            await rig.stop(deleting: [kept.id])
        }

        /// PostgreSQL stopped while deliveries are in flight: attempts that finished
        /// meanwhile are kept and recorded once it is back; claiming resumes; every event
        /// reaches the receiver and ends recorded as delivered.
        @Test func postgresStoppedMidDeliveryLosesNothing() async throws {
            let rig = try await Rig.start()
            let receiver = try await WebhookReceiver.start(Array(repeating: .hang(.milliseconds(300)), count: 8))
            defer { receiver.stop() }
            let (subscription, _) = try await rig.subscriptions.create(url: receiver.url, eventPatterns: [rig.type], secret: nil, description: nil)
            let ids = try await rig.publish(40)
            try await eventually("requests in flight") { receiver.received.count > 0 }
            try TestEnvironment.services("stop", "postgres")
            var restarted = false
            defer { if !restarted { _ = try? TestEnvironment.services("start", "postgres") } }
            try await Task.sleep(for: .seconds(3))
            try TestEnvironment.services("start", "postgres")
            restarted = true
            try await eventually(timeout: .seconds(60), "all 40 recorded as delivered") {
                (try? await rig.deliveries(subscription.id, status: "delivered")) == 40
            }
            #expect(Set(receiver.received.compactMap(\.eventID)) == Set(ids))
            #expect(try await rig.deliveries(subscription.id, status: "pending") == 0)
            await rig.stop(deleting: [subscription.id])
        }

        /// `warren consume webhooks.delivery --metrics-address`: attempts counted by outcome.
        @Test func theDispatcherCountsAttemptsByOutcome() async throws {
            let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
            defer { Task { await harness.tearDown() } }
            let store = WebhookSubscriptions(database: harness.database, destinations: Self.lifted)
            let type = "stripe.\(TestEnvironment.uniqueName("whm").replacingOccurrences(of: "-", with: "")).ping"
            let flaky = try await WebhookReceiver.start([.status(500)])
            let gone = try await WebhookReceiver.start([.status(410)])
            defer { flaky.stop(); gone.stop() }
            let subscriptions = [
                try await store.create(url: flaky.url, eventPatterns: [type], secret: nil, description: nil).0.id,
                try await store.create(url: gone.url, eventPatterns: [type], secret: nil, description: nil).0.id,
            ]
            let port = try freePort()
            let process = try WarrenProcess.consume(
                harness,
                environment: [
                    "WARREN_WEBHOOK_ALLOW_PRIVATE": "1", "WARREN_WEBHOOK_RETRY_SCHEDULE": "0.2", "WARREN_METRICS_ADDRESS": "127.0.0.1:\(port)",
                ])
            defer { _ = process.kill(SIGTERM) }
            try await harness.publish([CloudEvent(type: type, source: "/tests/webhooks", data: ["n": 1])])
            try await eventually("delivered on the second attempt, and the other subscription gone") {
                guard let scrape = try? await MetricsTests.scrape(port) else { return false }
                return scrape[#"warren_webhook_deliveries_total{outcome="delivered"}"#] == 1 && scrape[#"warren_webhook_deliveries_total{outcome="gone"}"#] == 1
            }
            let scrape = try await MetricsTests.scrape(port)
            #expect(scrape[#"warren_webhook_deliveries_total{outcome="retried"}"#] == 1)
            #expect(scrape[#"warren_webhook_deliveries_total{outcome="failed"}"#] == 0)
            #expect(scrape["warren_webhook_attempt_duration_seconds_count"] == 3)
            #expect(scrape[#"warren_consumer_messages_total{consumer="webhooks.delivery",outcome="processed"}"#] == 1)
            for id in subscriptions { try? await store.delete(id) }
        }

        @Test func killedMidFanOutEveryDeliveryIsDeliveredOrPendingNoneLost() async throws {
            let harness = try await ConsumerHarness.make(consumer: "webhooks.delivery", bindings: ["#"])
            defer { Task { await harness.tearDown() } }
            let store = WebhookSubscriptions(database: harness.database, destinations: Self.lifted)
            let type = "stripe.\(TestEnvironment.uniqueName("wh").replacingOccurrences(of: "-", with: "")).ping"
            var receivers: [WebhookReceiver] = []
            var subscriptions: [String] = []
            for _ in 0..<3 {
                let receiver = try await WebhookReceiver.start()
                receivers.append(receiver)
                subscriptions.append(try await store.create(url: receiver.url, eventPatterns: [type], secret: nil, description: nil).0.id)
            }
            let environment = ["WARREN_WEBHOOK_ALLOW_PRIVATE": "1", "WARREN_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2", "WARREN_WEBHOOK_TIMEOUT": "2"]
            var process = try WarrenProcess.consume(harness, environment: environment)
            let events = (0..<1_000).map { CloudEvent(type: type, source: "/tests/webhooks", data: ["n": .integer(Int64($0))]) }
            try await harness.publish(events)
            // Killed mid fan-out: some deliveries stored, most events still in the queue.
            try await eventually("fan-out started") {
                try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscriptions[0])") > 0
            }
            #expect(process.kill(SIGKILL) == 128 + SIGKILL)
            let stored = try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = \(subscriptions[0])")
            #expect(stored < 1_000, "killed before the fan-out finished (\(stored) of 1,000 stored)")
            process = try WarrenProcess.consume(harness, environment: environment)
            let ids = Set(events.map(\.id))
            for (receiver, subscription) in zip(receivers, subscriptions) {
                try await eventually(timeout: .seconds(120), "subscriber \(subscription) got all 1,000") {
                    Set(receiver.received.compactMap(\.eventID)) == ids
                }
            }
            try await eventually("every delivery recorded delivered") {
                try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = ANY(\(PostgresArrayLiteral.text(subscriptions))::text[]) AND status = 'delivered'") == 3_000
            }
            // One row per (subscription, event): nothing lost, nothing doubled by the crash.
            #expect(try await harness.count("SELECT count(*) FROM warren_webhook_deliveries WHERE subscription_id = ANY(\(PostgresArrayLiteral.text(subscriptions))::text[])") == 3_000)
            #expect(process.kill(SIGTERM) == 0)
            for receiver in receivers { receiver.stop() }
            for id in subscriptions { try? await store.delete(id) }
        }
    }
}
