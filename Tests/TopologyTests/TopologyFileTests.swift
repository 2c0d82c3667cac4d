import Foundation
import Testing
@testable import Topology

@Suite struct TopologyFileTests {
    static let repositoryFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("topology/topology.yaml").path

    @Test func theRepositoryFileDeclaresTheFirstReleaseConsumers() throws {
        let topology = try Topology.load(path: Self.repositoryFile)
        #expect(topology.exchange == ExchangeSpec(name: "events", type: "topic"))
        #expect(topology.consumers.map(\.name) == ["users.projection", "payments.ledger", "email.notifications", "payments.customers", "webhooks.delivery"])
        let bindings = Dictionary(uniqueKeysWithValues: topology.consumers.map { ($0.name, $0.bindings) })
        #expect(bindings == [
            "users.projection": ["user.*"],
            "payments.ledger": ["payment.*"],
            "email.notifications": ["user.created", "payment.succeeded", "payment.failed"],
            "payments.customers": ["user.created"],
            "webhooks.delivery": ["#"],
        ])
        // payments.customers needs STRIPE_SECRET_KEY, which a first run does not have: its
        // queue would fill unconsumed.
        #expect(topology.consumers.filter { !$0.enabled }.map(\.name) == ["payments.customers"])
        let ledger = try #require(topology.consumer(named: "payments.ledger"))
        #expect(ledger.maxAttempts == 5)
        #expect(ledger.retryDelays == [.seconds(5), .seconds(30), .seconds(120), .seconds(600)])
        #expect(ledger.prefetch == 50 && ledger.batchSize == 50 && ledger.deliveryLimit == 20)
        #expect(ledger.batchWait == .zero, "an idle consumer handles each event at once")
    }

    @Test func consumersOverrideDefaultsKeyByKey() throws {
        let topology = try Topology.parse("""
            defaults:
              max_attempts: 3
              retry_delays: [1s]
              prefetch: 10
              batch_size: 5
            consumers:
              a:
                bindings: [x.y]
              b:
                bindings: [x.*]
                max_attempts: 1
                retry_delays: []
                prefetch: 200
                batch_size: 100
                batch_wait: 1s
                delivery_limit: 3
            """)
        let a = try #require(topology.consumer(named: "a"))
        #expect(a == ConsumerSpec(name: "a", bindings: ["x.y"], maxAttempts: 3, retryDelays: [.seconds(1)], prefetch: 10, batchSize: 5, batchWait: .zero, deliveryLimit: 20))
        let b = try #require(topology.consumer(named: "b"))
        #expect(b == ConsumerSpec(name: "b", bindings: ["x.*"], maxAttempts: 1, retryDelays: [], prefetch: 200, batchSize: 100, batchWait: .seconds(1), deliveryLimit: 3))
        #expect(topology.exchange == ExchangeSpec(name: "events", type: "topic"))
    }

    @Test func queueNamesFollowTheConvention() throws {
        let consumer = try #require(try Topology.load(path: Self.repositoryFile).consumer(named: "users.projection"))
        #expect(consumer.queueName == "users.projection")
        #expect(consumer.deadLetterQueueName == "users.projection.dlq")
        #expect(consumer.retryQueueNames == ["users.projection.retry.1", "users.projection.retry.2", "users.projection.retry.3", "users.projection.retry.4"])
    }

    @Test func retriesUseEachTierThenDeadLetter() {
        let consumer = ConsumerSpec(name: "c", bindings: ["#"], maxAttempts: 5, retryDelays: [.seconds(5), .seconds(30)], prefetch: 1, batchSize: 1, batchWait: .zero, deliveryLimit: 20)
        #expect(consumer.retryQueue(afterAttempt: 1)?.queue == "c.retry.1")
        #expect(consumer.retryQueue(afterAttempt: 1)?.delay == .seconds(5))
        #expect(consumer.retryQueue(afterAttempt: 2)?.queue == "c.retry.2")
        // The last delay repeats until the attempts are used up.
        #expect(consumer.retryQueue(afterAttempt: 4)?.queue == "c.retry.2")
        #expect(consumer.retryQueue(afterAttempt: 5) == nil)
        #expect(consumer.retryQueue(afterAttempt: 0) == nil)
    }

    @Test(arguments: [("500ms", Duration.milliseconds(500)), ("5s", .seconds(5)), ("2m", .seconds(120)), ("1h", .seconds(3600)), ("0ms", .zero)])
    func durationsParse(text: String, duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: ["5x", "5", "s", "-5s", "1.5s", " 5s", "5 s", "m5", "99999999999999999h"])
    func badDurationsDoNotParse(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test func durationsFormatInTheLargestWholeUnit() {
        #expect(DurationText.format(.seconds(120)) == "2m")
        #expect(DurationText.format(.seconds(90)) == "90s")
        #expect(DurationText.format(.milliseconds(1500)) == "1500ms")
        #expect(DurationText.format(.zero) == "0ms")
    }
}
