import AMQP
import Foundation
import Testing
import Topology

extension Integration {
    /// `plan`, `apply` and `export` against the real broker, each test in a vhost of its own.
    @Suite(.serialized) struct TopologyIntegrationTests {
        static let topology = try! Topology.load(path: TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path)

        @Test func applyingTwiceChangesNothingTheSecondTime() async throws {
            try await TopologyVhost.with { vhost in
                #expect(!(try await vhost.plan()).isEmpty())
                #expect(try await vhost.apply().isEmpty)
                let plan = try await vhost.plan()
                #expect(plan.isEmpty(prune: true))
                #expect(plan.lines() == ["= 37 unchanged"])  // 1 exchange, 5 × (main + 4 tiers + dlq) queues, 6 bindings (payments.customers disabled)
                #expect(try await vhost.apply().isEmpty)
                #expect(try await vhost.plan() == plan)
            }
        }

        @Test func anInequivalentQueueIsReportedAndLeftAlone() async throws {
            try await TopologyVhost.with { vhost in
                let ledger = try #require(Self.topology.declarations.queues.first { $0.name == "payments.ledger" })
                var arguments = ledger.arguments
                arguments["x-delivery-limit"] = .int(10)
                try await vhost.channel.declareQueue("payments.ledger", arguments: arguments.fieldTable)

                let conflicts = try await vhost.apply()
                #expect(conflicts.map(\.description) == [
                    "queue 'payments.ledger': argument 'x-delivery-limit' differs from the live queue (live 10, file 20); not changed — delete or migrate it by hand",
                ])
                let plan = try await vhost.plan()
                #expect(plan.conflicts == [TopologyPlan.Conflict(object: "queue payments.ledger", argument: "x-delivery-limit", live: "10", file: "20")])
                // Everything else was applied, the ledger's binding included.
                #expect(plan.changes.count == 1)
                #expect(plan.unchanged == 36)
            }
        }

        @Test func pruneRemovesOnlyBindingsTheFileNoLongerHas() async throws {
            try await TopologyVhost.with { vhost in
                _ = try await vhost.apply()
                try await vhost.channel.bindQueue("payments.ledger", to: "events", routingKey: "customer.*")
                let stale = BindingDeclaration(exchange: "events", queue: "payments.ledger", routingKey: "customer.*")
                let plan = try await vhost.plan()
                #expect(plan.bindingsToRemove == [stale])
                #expect(plan.isEmpty() && !plan.isEmpty(prune: true))
                _ = try await vhost.apply()
                #expect(try await vhost.plan().bindingsToRemove == [stale])  // kept without --prune
                try await TopologyApplier(channel: vhost.channel, logger: TestEnvironment.logger).removeBindings(plan.bindingsToRemove)
                #expect(try await vhost.plan().isEmpty(prune: true))
            }
        }

        /// The shipped file disables payments.customers: `warren topology apply` unbinds
        /// what an earlier apply (or a hand) bound to it, so its queue stops filling, and
        /// keeps the queue.
        @Test func applyUnbindsADisabledConsumerAndItsQueueStopsFilling() async throws {
            try await TopologyVhost.with { vhost in
                _ = try await vhost.apply()
                try await vhost.channel.bindQueue("payments.customers", to: "events", routingKey: "user.created")
                try await vhost.channel.bindQueue("payments.customers", to: "events", routingKey: "customer.*")
                #expect(try await vhost.plan().bindingsOfDisabledConsumers.map(\.routingKey) == ["customer.*", "user.created"])

                let (status, output) = try Integration.HTTPServerTests.warren(["topology", "apply"], environment: [
                    "WARREN_AMQP_URL": vhost.url, "WARREN_MANAGEMENT_URL": ManagementAPI.base,
                    "WARREN_TOPOLOGY": TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path,
                ])
                #expect(status == 0, "\(output)")
                #expect(output.contains("- binding events -> payments.customers (customer.*) — consumer disabled"), "\(output)")
                #expect(try await vhost.plan().isEmpty(prune: true))
                #expect(try await vhost.channel.queueInfo("payments.customers.dlq").messageCount == 0, "its queues are kept")

                try await vhost.channel.publish(Array("{}".utf8), exchange: "events", routingKey: "user.created")
                try await vhost.channel.publish(Array("{}".utf8), exchange: "events", routingKey: "customer.updated")
                try await eventually("user.created is routed") { try await vhost.channel.queueInfo("users.projection").messageCount == 1 }
                #expect(try await vhost.channel.queueInfo("payments.customers").messageCount == 0)
            }
        }

        @Test func consumeRefusesADisabledConsumer() throws {
            let (status, output) = try Integration.HTTPServerTests.warren(["consume", "payments.customers"], environment: [
                "STRIPE_SECRET_KEY": "sk_test_x",
                "WARREN_TOPOLOGY": TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path,
            ])
            #expect(status == 1)
            #expect(output.contains("consumer 'payments.customers' is disabled in "), "\(output)")
            #expect(output.contains("set enabled: true and run 'warren topology apply' first"), "\(output)")
        }

        @Test func exportImportsIntoAFreshVhostAsApplyWouldDeclare() async throws {
            try await TopologyVhost.with { applied in
                try await TopologyVhost.with { imported in
                    _ = try await applied.apply()
                    let file = NSTemporaryDirectory() + "warren-definitions-\(UUID().uuidString).json"
                    defer { try? FileManager.default.removeItem(atPath: file) }
                    try DefinitionsExport(Self.topology.declarations, vhost: imported.name).json().write(to: URL(fileURLWithPath: file))
                    try TestEnvironment.services("ctl", "import_definitions", file)

                    // rabbitmqctl only starts the import.
                    try await eventually("the imported topology matches the file") { try await imported.plan().isEmpty(prune: true) }
                    #expect(try await imported.live() == applied.live())
                    #expect(try await imported.apply().isEmpty)
                }
            }
        }

        @Test func anEventReachesExactlyTheQueuesWhoseBindingsMatch() async throws {
            try await TopologyVhost.with { vhost in
                _ = try await vhost.apply()
                try await vhost.channel.publish(Array("{}".utf8), exchange: "events", routingKey: "user.created")
                let expected: [String: UInt32] = [
                    "users.projection": 1, "email.notifications": 1, "payments.customers": 0, "webhooks.delivery": 1, "payments.ledger": 0,
                ]
                var counts: [String: UInt32] = [:]
                try await eventually("user.created is routed") {
                    for queue in expected.keys { counts[queue] = try await vhost.channel.queueInfo(queue).messageCount }
                    return counts == expected
                }
                for consumer in Self.topology.consumers {
                    #expect(try await vhost.channel.queueInfo(consumer.deadLetterQueueName).messageCount == 0)
                    for tier in consumer.retryQueueNames { #expect(try await vhost.channel.queueInfo(tier).messageCount == 0) }
                }
            }
        }

        @Test func planSaysSoWhenTheManagementAPIIsUnreachable() async throws {
            let client = try ManagementClient(url: "http://127.0.0.1:1", user: "guest", password: "guest", vhost: "/")
            await #expect {
                try await client.liveTopology(exchange: "events")
            } throws: { error in
                let error = error as? TopologyError
                return error?.code == .managementAPI && error?.description.hasPrefix("management API unreachable at http://127.0.0.1:1") == true
            }
        }

        @Test func planNamesAMissingVhost() async throws {
            let client = try ManagementClient(url: ManagementAPI.base, user: "guest", password: "guest", vhost: "no-such-vhost")
            await #expect(throws: TopologyError(.managementAPI, "vhost 'no-such-vhost' does not exist")) {
                try await client.liveTopology(exchange: "events")
            }
        }
    }
}

/// A fresh vhost with the guest user's permissions, an AMQP channel and the management
/// client on it; deleted afterwards.
private struct TopologyVhost {
    let name: String
    var url: String { Self.url(name) }

    static func url(_ vhost: String) -> String {
        "amqp://guest:guest@127.0.0.1:5672/\(vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
    }
    let connection: AMQPConnection
    let channel: AMQPChannel
    let management: ManagementClient

    static func with(_ body: (TopologyVhost) async throws -> Void) async throws {
        let name = TestEnvironment.uniqueName("topology")
        try TestEnvironment.services("ctl", "add_vhost", name)
        defer { _ = try? TestEnvironment.services("ctl", "delete_vhost", name) }
        try TestEnvironment.services("ctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        let connection = try await AMQPConnection.forTests(url: url(name))
        do {
            let vhost = TopologyVhost(
                name: name, connection: connection, channel: try await connection.openChannel(),
                management: try ManagementClient(url: ManagementAPI.base, user: "guest", password: "guest", vhost: name))
            try await body(vhost)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    func apply() async throws -> [TopologyError] {
        try await TopologyApplier(channel: channel, logger: TestEnvironment.logger).apply(Integration.TopologyIntegrationTests.topology.declarations)
    }

    func live() async throws -> LiveTopology {
        try await management.liveTopology(exchange: "events")
    }

    func plan() async throws -> TopologyPlan {
        TopologyPlan(desired: Integration.TopologyIntegrationTests.topology.declarations, live: try await live())
    }
}
