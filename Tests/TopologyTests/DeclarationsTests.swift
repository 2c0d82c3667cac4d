import AMQP
import Foundation
import Testing
@testable import Topology

@Suite struct DeclarationsTests {
    static let topology = try! Topology.parse("""
        defaults:
          retry_delays: [5s, 2m]
          delivery_limit: 20
        consumers:
          users.projection:
            bindings: ["user.*"]
          webhooks.delivery:
            bindings: ["#"]
            max_attempts: 1
            retry_delays: []
        """)

    @Test func everyConsumerGetsItsMainTiersAndDeadLetterQueue() {
        let declarations = Self.topology.declarations
        #expect(declarations.exchange == ExchangeDeclaration(name: "events", type: "topic"))
        #expect(declarations.queues.map(\.name) == [
            "users.projection.dlq", "users.projection.retry.1", "users.projection.retry.2", "users.projection",
            "webhooks.delivery.dlq", "webhooks.delivery",
        ])
        let queues = Dictionary(uniqueKeysWithValues: declarations.queues.map { ($0.name, $0.arguments) })
        #expect(queues["users.projection"] == [
            "x-queue-type": .string("quorum"),
            "x-delivery-limit": .int(20),
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-routing-key": .string("users.projection.dlq"),
            "x-dead-letter-strategy": .string("at-least-once"),
            "x-overflow": .string("reject-publish"),
        ])
        #expect(queues["users.projection.retry.2"] == [
            "x-queue-type": .string("quorum"),
            "x-message-ttl": .int(120_000),
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-routing-key": .string("users.projection"),
            "x-dead-letter-strategy": .string("at-least-once"),
            "x-overflow": .string("reject-publish"),
        ])
        #expect(queues["users.projection.dlq"] == ["x-queue-type": .string("quorum")])
        #expect(declarations.bindings == [
            BindingDeclaration(exchange: "events", queue: "users.projection", routingKey: "user.*"),
            BindingDeclaration(exchange: "events", queue: "webhooks.delivery", routingKey: "#"),
        ])
    }

    static let withDisabled = try! Topology.parse("""
        consumers:
          users.projection:
            bindings: ["user.*"]
          payments.customers:
            bindings: [user.created, user.deleted]
            enabled: false
        """)

    @Test func aDisabledConsumerKeepsItsQueuesButIsBoundToNothing() {
        let declarations = Self.withDisabled.declarations
        #expect(declarations.queues.map(\.name).filter { $0.hasPrefix("payments.customers") } == [
            "payments.customers.dlq", "payments.customers.retry.1", "payments.customers.retry.2", "payments.customers.retry.3",
            "payments.customers.retry.4", "payments.customers",
        ])
        #expect(declarations.bindings == [BindingDeclaration(exchange: "events", queue: "users.projection", routingKey: "user.*")])
        #expect(declarations.unbound == [
            BindingDeclaration(exchange: "events", queue: "payments.customers", routingKey: "user.created"),
            BindingDeclaration(exchange: "events", queue: "payments.customers", routingKey: "user.deleted"),
        ])
        let export = String(decoding: DefinitionsExport(declarations, vhost: "/").json(), as: UTF8.self)
        #expect(!export.contains("\"destination\":\"payments.customers\""), "export binds nothing to a disabled consumer")
    }

    @Test func planRemovesEveryLiveBindingToADisabledConsumerWithoutPrune() {
        let declarations = Self.withDisabled.declarations
        var live = Self.applied(declarations)
        let fromTheFile = BindingDeclaration(exchange: "events", queue: "payments.customers", routingKey: "user.created")
        let byHand = BindingDeclaration(exchange: "events", queue: "payments.customers", routingKey: "customer.*")
        live.bindings += [fromTheFile, byHand]
        let plan = TopologyPlan(desired: declarations, live: live)
        #expect(plan.bindingsOfDisabledConsumers == [byHand, fromTheFile])
        #expect(plan.bindingsToRemove.isEmpty, "not left to --prune")
        #expect(!plan.isEmpty(), "apply has work to do")
        #expect(plan.lines().dropLast() == [
            "- binding events -> payments.customers (customer.*) — consumer disabled",
            "- binding events -> payments.customers (user.created) — consumer disabled",
        ])
        // Once they are gone, nothing is left to do.
        #expect(TopologyPlan(desired: declarations, live: Self.applied(declarations)).isEmpty(prune: true))
    }

    @Test func exportWritesDefinitionsRabbitMQImports() throws {
        let data = DefinitionsExport(Self.topology.declarations, vhost: "prod").json()
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(json.keys) == ["exchanges", "queues", "bindings"])
        let exchanges = try #require(json["exchanges"] as? [[String: Any]])
        #expect(exchanges.count == 1)
        #expect(exchanges[0]["name"] as? String == "events")
        #expect(exchanges[0]["type"] as? String == "topic")
        #expect(exchanges[0]["vhost"] as? String == "prod")
        #expect(exchanges[0]["durable"] as? Bool == true)
        #expect(exchanges[0]["auto_delete"] as? Bool == false)
        #expect(exchanges[0]["internal"] as? Bool == false)
        let queues = try #require(json["queues"] as? [[String: Any]])
        #expect(queues.count == 6)
        let retry = try #require(queues.first { $0["name"] as? String == "users.projection.retry.1" })
        #expect(retry["vhost"] as? String == "prod")
        #expect(retry["durable"] as? Bool == true)
        #expect(retry["auto_delete"] as? Bool == false)
        let arguments = try #require(retry["arguments"] as? [String: Any])
        #expect(arguments["x-message-ttl"] as? Int == 5_000)
        #expect(arguments["x-dead-letter-exchange"] as? String == "")
        #expect(arguments["x-queue-type"] as? String == "quorum")
        let bindings = try #require(json["bindings"] as? [[String: Any]])
        #expect(bindings.count == 2)
        #expect(bindings[0]["source"] as? String == "events")
        #expect(bindings[0]["destination"] as? String == "users.projection")
        #expect(bindings[0]["destination_type"] as? String == "queue")
        #expect(bindings[0]["routing_key"] as? String == "user.*")
        #expect(bindings[0]["vhost"] as? String == "prod")
        #expect((bindings[0]["arguments"] as? [String: Any])?.isEmpty == true)
    }

    /// The live state an `apply` of `declarations` leaves.
    static func applied(_ declarations: TopologyDeclarations) -> LiveTopology {
        LiveTopology(
            exchange: LiveExchange(name: declarations.exchange.name, type: declarations.exchange.type, durable: true),
            queues: Dictionary(uniqueKeysWithValues: declarations.queues.map { ($0.name, LiveQueue(name: $0.name, durable: true, arguments: $0.arguments)) }),
            bindings: declarations.bindings)
    }

    @Test func anEmptyVhostNeedsEverything() {
        let declarations = Self.topology.declarations
        let plan = TopologyPlan(desired: declarations, live: LiveTopology(exchange: nil, queues: [:], bindings: []))
        #expect(!plan.isEmpty())
        #expect(plan.lines() == [
            "+ exchange events (topic, durable)",
            "+ queue users.projection.dlq (quorum)",
            "+ queue users.projection.retry.1 (quorum, x-dead-letter-exchange=\"\", x-dead-letter-routing-key=users.projection, x-dead-letter-strategy=at-least-once, x-message-ttl=5000, x-overflow=reject-publish)",
            "+ queue users.projection.retry.2 (quorum, x-dead-letter-exchange=\"\", x-dead-letter-routing-key=users.projection, x-dead-letter-strategy=at-least-once, x-message-ttl=120000, x-overflow=reject-publish)",
            "+ queue users.projection (quorum, x-dead-letter-exchange=\"\", x-dead-letter-routing-key=users.projection.dlq, x-dead-letter-strategy=at-least-once, x-delivery-limit=20, x-overflow=reject-publish)",
            "+ queue webhooks.delivery.dlq (quorum)",
            "+ queue webhooks.delivery (quorum, x-dead-letter-exchange=\"\", x-dead-letter-routing-key=webhooks.delivery.dlq, x-dead-letter-strategy=at-least-once, x-delivery-limit=20, x-overflow=reject-publish)",
            "+ binding events -> users.projection (user.*)",
            "+ binding events -> webhooks.delivery (#)",
            "= 0 unchanged",
        ])
    }

    @Test func anAppliedVhostNeedsNothing() {
        let declarations = Self.topology.declarations
        let plan = TopologyPlan(desired: declarations, live: Self.applied(declarations))
        #expect(plan.isEmpty(prune: true))
        #expect(plan.lines() == ["= 9 unchanged"])
    }

    @Test func differencesAreConflictsAndExtraBindingsRemovals() {
        let declarations = Self.topology.declarations
        var live = Self.applied(declarations)
        live.queues["users.projection"]?.arguments["x-delivery-limit"] = .int(10)
        live.queues["users.projection"]?.arguments["x-overflow"] = nil
        live.bindings.append(BindingDeclaration(exchange: "events", queue: "payments.old", routingKey: "payment.*"))
        live.queues["unrelated"] = LiveQueue(name: "unrelated", durable: true, arguments: [:])
        let plan = TopologyPlan(desired: declarations, live: live)
        #expect(plan.conflicts.map(\.argument) == ["x-delivery-limit", "x-overflow"])
        #expect(plan.bindingsToRemove == [BindingDeclaration(exchange: "events", queue: "payments.old", routingKey: "payment.*")])
        #expect(!plan.isEmpty())
        #expect(plan.lines() == [
            "! queue users.projection: x-delivery-limit differs (live 10, file 20) — needs manual action",
            "! queue users.projection: x-overflow differs (live not set, file reject-publish) — needs manual action",
            "- binding events -> payments.old (payment.*) — kept; apply --prune removes it",
            "= 8 unchanged",
        ])
        #expect(plan.lines(prune: true)[2] == "- binding events -> payments.old (payment.*)")
    }

    @Test func onlyRemovalsMakeAPlanEmptyWithoutPrune() {
        let declarations = Self.topology.declarations
        var live = Self.applied(declarations)
        live.bindings.append(BindingDeclaration(exchange: "events", queue: "payments.old", routingKey: "payment.*"))
        let plan = TopologyPlan(desired: declarations, live: live)
        #expect(plan.isEmpty())
        #expect(!plan.isEmpty(prune: true))
    }

    @Test(arguments: [
        ("PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '20' but current is '10'",
         "queue 'q': argument 'x-delivery-limit' differs from the live queue (live 10, file 20); not changed — delete or migrate it by hand"),
        ("PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue 'q' in vhost '/': received the value 'reject-publish' of type 'longstr' but current is none",
         "queue 'q': argument 'x-overflow' differs from the live queue (live not set, file reject-publish); not changed — delete or migrate it by hand"),
        ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': received the value 'quorum' of type 'longstr' but current is the value 'classic' of type 'longstr'",
         "queue 'q': argument 'x-queue-type' differs from the live queue (live classic, file quorum); not changed — delete or migrate it by hand"),
        ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'",
         "queue 'q': argument 'durable' differs from the live queue (live false, file true); not changed — delete or migrate it by hand"),
        ("PRECONDITION_FAILED - something else",
         "queue 'q': PRECONDITION_FAILED - something else; not changed — delete or migrate it by hand"),
    ])
    func inequivalentQueuesNameTheArgument(replyText: String, expected: String) {
        let arguments: [String: ArgumentValue] = ["x-delivery-limit": .int(20), "x-overflow": .string("reject-publish"), "x-queue-type": .string("quorum")]
        let error = AMQPError(.channelClosed, "queue.declare q", replyCode: 406, replyText: replyText)
        let reported = TopologyApplier.inequivalence(error, kind: "queue", name: "q") { argument in
            argument == "durable" ? "true" : arguments[argument]?.description
        }
        #expect(reported.code == .inequivalent)
        #expect(reported.description == expected)
    }
}
