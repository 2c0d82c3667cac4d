import AMQP
import App
import Consumers
import Foundation
import Handlers
import Logging
import Messaging
import Postgres
import ServiceLifecycle
import Locking
import Topology
import WarrenCore

/// A consumer under test: its own vhost (so queues never clash with other tests or the
/// real topology), the topology applied there, the real database, and the runtime run
/// in-process in a ServiceGroup that the test can shut down gracefully.
final class ConsumerHarness: Sendable {
    let vhost: String
    let amqpURL: String
    let spec: ConsumerSpec
    let amqp: AMQPConnection
    let channel: AMQPChannel
    let database: PostgresPool
    let catalog: EventCatalog
    let logs = LogRecorder()
    let events = ConsumerEventRecorder()
    private let group = Mutex<(ServiceGroup, Task<Void, any Error>)?>(nil)

    static func make(
        consumer: String = "users.projection", bindings: [String] = ["user.*"], maxAttempts: Int = 5,
        retryDelays: [Duration] = [.milliseconds(300), .milliseconds(600)], batchSize: Int = 50, databaseConnections: Int = 4
    ) async throws -> ConsumerHarness {
        let vhost = TestEnvironment.uniqueName("vhost")
        try TestEnvironment.services("ctl", "add_vhost", vhost)
        try TestEnvironment.services("ctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        let spec = ConsumerSpec(
            name: consumer, bindings: bindings, maxAttempts: maxAttempts, retryDelays: retryDelays, prefetch: 100,
            batchSize: batchSize, batchWait: .zero, deliveryLimit: 20)
        return try await ConsumerHarness(vhost: vhost, spec: spec, databaseConnections: databaseConnections)
    }

    private init(vhost: String, spec: ConsumerSpec, databaseConnections: Int) async throws {
        self.vhost = vhost
        self.spec = spec
        amqpURL = "amqp://guest:guest@127.0.0.1:5672/\(vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
        amqp = try await AMQPConnection.forTests(url: amqpURL)
        channel = try await amqp.openChannel()
        try await Self.applyTopology(spec, on: channel)
        database = PostgresPool(conninfo: TestEnvironment.databaseURL, maxConnections: databaseConnections, logger: TestEnvironment.logger)
        try await database.withConnection { connection in
            _ = try await PostgresMigrator(directory: TestEnvironment.repositoryRoot.appendingPathComponent("migrations").path, logger: TestEnvironment.logger)
                .migrate(on: connection)
        }
        catalog = try EventCatalog(directory: TestEnvironment.repositoryRoot.appendingPathComponent("events").path)
    }

    /// Declares (again) the consumer's queues and bindings in the harness's vhost.
    func applyTopology() async throws { try await Self.applyTopology(spec, on: channel) }

    private static func applyTopology(_ spec: ConsumerSpec, on channel: AMQPChannel) async throws {
        let topology = Topology(exchange: ExchangeSpec(), consumers: [spec])
        let problems = try await TopologyApplier(channel: channel, logger: TestEnvironment.logger).apply(topology.declarations)
        guard problems.isEmpty else { throw TestFailure("topology: \(problems)") }
    }

    func start(module: any ConsumerModule) { start(handler: .transactional(module)) }

    func start(module: any CallingModule) { start(handler: .calling(module)) }

    func start(handler: ConsumerHandler) {
        let runtime = ConsumerRuntime(
            settings: ConsumerSettings(spec), handler: handler, amqp: amqp, database: database, catalog: catalog, logger: logs.logger(),
            observer: events.observer)
        let serviceGroup = ServiceGroup(configuration: ServiceGroupConfiguration(services: [runtime], logger: TestEnvironment.logger))
        group.withLock { $0 = (serviceGroup, Task { try await serviceGroup.run() }) }
    }

    /// Graceful shutdown, as SIGTERM would; throws what the runtime threw.
    func stop() async throws {
        guard let (serviceGroup, task) = group.withLock({ state in defer { state = nil }; return state }) else { return }
        await serviceGroup.triggerGracefulShutdown()
        try await task.value
    }

    func tearDown() async {
        try? await stop()
        await amqp.close()
        await database.close()
        _ = try? TestEnvironment.services("ctl", "delete_vhost", vhost)
    }

    // MARK: Publishing

    func publish(_ events: [CloudEvent]) async throws {
        let publisher = EventPublisher(channel: channel, catalog: catalog)
        for result in await publisher.publish(events) { try result.get() }
    }

    /// Bypasses the catalog: what a broken upstream service in another language might send.
    func publishRaw(_ body: [UInt8], routingKey: String, messageID: String) async throws {
        try await channel.publish(
            body, exchange: "events", routingKey: routingKey,
            properties: AMQPProperties(contentType: CloudEvent.contentType, deliveryMode: 2, messageID: messageID), mandatory: true)
    }

    // MARK: Looking

    func messages(in queue: String) async throws -> Int { Int(try await channel.queueInfo(queue).messageCount) }

    /// Takes every message out of the dead-letter queue.
    func drainDeadLetters() async throws -> [AMQPDelivery] {
        var deliveries: [AMQPDelivery] = []
        while let delivery = try await channel.get(queue: spec.deadLetterQueueName) {
            deliveries.append(delivery)
            try channel.ack(delivery)
        }
        return deliveries
    }

    func count(_ sql: PostgresQuery) async throws -> Int {
        try await database.withConnection { connection in
            Int(try await connection.query(sql).first!.decode(Int64.self, at: 0))
        }
    }

    func inboxCount(ids: [String]) async throws -> Int {
        try await count("SELECT count(*) FROM warren_inbox WHERE consumer = \(spec.name) AND message_id = ANY(\(Self.array(ids))::text[])")
    }

    static func array(_ values: [String]) -> String { "{" + values.map { "\"\($0)\"" }.joined(separator: ",") + "}" }
}

/// A users.projection whose events fail transiently a given number of times, per event id.
final class FlakyUsers: ConsumerModule, Sendable {
    let name = "users.projection"
    private let failuresLeft: Mutex<[String: Int]>
    let inner = UsersProjection()

    init(failing: [String: Int]) {
        failuresLeft = Mutex(failing)
    }

    func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        var failures: [Int: HandlerFailure] = [:]
        var healthy: [(Int, CloudEvent)] = []
        for (index, event) in events.enumerated() {
            let fail = failuresLeft.withLock { left -> Bool in
                guard let count = left[event.id], count != 0 else { return false }
                left[event.id] = count - 1
                return true
            }
            if fail { failures[index] = .transient("test.flaky", "provider unavailable (simulated)") } else { healthy.append((index, event)) }
        }
        let innerFailures = try await inner.apply(healthy.map(\.1), on: connection)
        for (position, failure) in innerFailures { failures[healthy[position].0] = failure }
        return failures
    }
}

func userCreated(_ id: String, name: String = "Ada", email: String = "ada@example.com", time: Date = Date(), eventID: String? = nil) -> CloudEvent {
    CloudEvent(type: "user.created", source: "/tests", data: ["id": .string(id), "name": .string(name), "email": .string(email)],
               id: eventID ?? UUID().uuidString.lowercased(), time: time)
}

/// `warren consume` as its own process, for what only a process can show: SIGKILL
/// mid-batch and SIGTERM's exit status.
struct WarrenProcess {
    let pid: pid_t

    static func consume(_ harness: ConsumerHarness, environment extra: [String: String] = [:], arguments: [String] = []) throws -> WarrenProcess {
        let root = TestEnvironment.repositoryRoot.path
        var environment = ProcessInfo.processInfo.environment
        environment["WARREN_AMQP_URL"] = harness.amqpURL
        environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
        environment["WARREN_TOPOLOGY"] = root + "/topology/topology.yaml"
        environment["WARREN_CATALOG"] = root + "/events"
        for (key, value) in extra { environment[key] = value }
        let log = NSTemporaryDirectory() + "warren-consume-\(harness.vhost).log"
        return WarrenProcess(pid: try spawn(
            TestEnvironment.warrenBinary, ["consume", harness.spec.name, "--log-format", "json"] + arguments, environment: environment, output: log))
    }

    /// Sends `signal` and returns the exit status (the signal number + 128 if killed by it).
    func kill(_ signal: Int32) -> Int32 {
        Glibc.kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}
