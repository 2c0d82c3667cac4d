import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Messaging
import Postgres
import Locking
import Testing
import Topology
import WarrenCore

extension Integration {
    /// A 3-node RabbitMQ cluster (`scripts/services cluster`), quorum queues on all three:
    /// `warren consume users.projection` connected with the three URLs while 20,000
    /// confirmed publishes stream and one node is killed with SIGKILL, then restarted —
    /// the queue's leader, a follower, and the publisher's own node. Every confirmed event
    /// lands in PostgreSQL exactly once, nothing is dead-lettered, and consumption resumes
    /// within 30 s of the kill (printed).
    @Suite struct ClusterTests {
        static let ports = [5672, 5673, 5674]
        static let urls = ports.map { "amqp://guest:guest@127.0.0.1:\($0)/%2f" }.joined(separator: ",")
        static let total = 20_000
        static let killAfter = 5_000

        enum Victim: String, CaseIterable {
            case leader, follower, publisherNode = "publisher's node"
        }

        @Test func quorumQueuesSurviveLosingANode() async throws {
            // The cluster takes the single node's ports: it is stopped for this test and
            // started again after it.
            try TestEnvironment.services("stop", "rabbitmq")
            defer {
                _ = try? TestEnvironment.services("cluster", "wipe")
                _ = try? TestEnvironment.services("start", "rabbitmq")
            }
            _ = try TestEnvironment.services("cluster", "wipe")
            _ = try TestEnvironment.services("cluster", "start")

            let setup = try await AMQPConnection.forTests(url: Self.urls)
            let channel = try await setup.openChannel()
            let topology = try Topology.load(path: TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path)
            let spec = try #require(topology.consumer(named: "users.projection"))
            let problems = try await TopologyApplier(channel: channel, logger: TestEnvironment.logger)
                .apply(Topology(exchange: topology.exchange, consumers: [spec]).declarations)
            #expect(problems.isEmpty, "\(problems)")
            try await eventually("the queue has three members") { (try? await Self.members(spec.queueName).count) == 3 }

            let database = PostgresPool(conninfo: TestEnvironment.databaseURL, maxConnections: 2, logger: TestEnvironment.logger)
            defer { Task { await database.close() } }
            // This may be the first test of a fresh clone: the schema first.
            try await database.withConnection { connection in
                _ = try await PostgresMigrator(
                    directory: TestEnvironment.repositoryRoot.appendingPathComponent("migrations").path, logger: TestEnvironment.logger
                ).migrate(on: connection)
            }
            let metricsPort = try freePort()
            let consumer = try Self.startConsumer(metricsPort: metricsPort)
            defer { _ = consumer.kill(SIGTERM) }
            try await eventually(timeout: .seconds(60), "the consumer is ready") {
                (try? await MetricsTests.get(metricsPort, "/readyz"))?.status == 200
            }

            for victim in Victim.allCases {
                try await Self.run(victim, queue: spec.queueName, database: database)
            }
            #expect(try await channel.queueInfo(spec.deadLetterQueueName).messageCount == 0, "nothing dead-lettered")
            await setup.close()
        }

        /// One round: publish, kill `victim` once 5,000 are confirmed, measure, restart it, check.
        static func run(_ victim: Victim, queue: String, database: PostgresPool) async throws {
            let prefix = "cluster-\(victim.rawValue.prefix(6).filter(\.isLetter))-\(UUID().uuidString.prefix(8).lowercased())"
            // Three distinct failures: the leader with the publisher elsewhere, a follower
            // with the publisher on the other follower, the publisher's node (a follower).
            let (leader, members) = try await leaderAndMembers(queue)
            let followers = members.filter { $0 != leader }
            try #require(followers.count == 2, "members: \(members)")
            let (target, publisherNode): (Int, Int) =
                switch victim {
                case .leader: (leader, followers[0])
                case .follower: (followers[0], followers[1])
                case .publisherNode: (followers[0], followers[0])
                }
            let publisher = try await AMQPConnection.forTests(url: urls(startingAt: publisherNode)) { $0.publishTimeout = .seconds(30) }
            defer { Task { await publisher.close() } }
            #expect(try node(of: publisher) == publisherNode)
            let channel = try await publisher.openChannel()
            let events = EventPublisher(
                channel: channel, catalog: nil,
                options: PublishOptions(timeout: .seconds(30), retry: RetryPolicy(maxAttempts: 20, initialDelay: .milliseconds(200), maxDelay: .seconds(2))))

            let confirmed = Mutex<[String]>([])
            let failures = Mutex<[String]>([])
            let publishing = Task {
                for start in stride(from: 0, to: total, by: 1_000) {
                    let batch = (start..<min(start + 1_000, total)).map { userCreated("\(prefix)-\($0)", email: "c\($0)@example.com", eventID: "\(prefix)-\($0)") }
                    for (event, result) in zip(batch, await events.publish(batch)) {
                        switch result {
                        case .success: confirmed.withLock { $0.append(event.data!["id"]!.stringValue!) }
                        case .failure(let error): failures.withLock { $0.append("\(error)") }
                        }
                    }
                }
            }
            try await eventually(timeout: .seconds(120), "\(killAfter) confirmed before the kill") { confirmed.withLock { $0.count } >= killAfter }

            let landedAtKill = try await landed(prefix, database)
            let killedAt = ContinuousClock.now
            _ = try TestEnvironment.services("cluster", "kill", "\(target)")
            // Resumed: events beyond what was in flight at the kill (a batch or so) land.
            var resumedAfter: Duration?
            while ContinuousClock.now - killedAt < .seconds(90) {
                if try await landed(prefix, database) > landedAtKill + 300 {
                    resumedAfter = ContinuousClock.now - killedAt
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let restartedAt = ContinuousClock.now
            _ = try TestEnvironment.services("cluster", "restart", "\(target)")
            let restart = ContinuousClock.now - restartedAt
            await publishing.value

            let ids = confirmed.withLock { $0 }
            try await eventually(timeout: .seconds(180), "every confirmed event of the \(victim.rawValue) round landed") {
                try await landed(ids: ids, database) == ids.count
            }
            print(
                "cluster: killed the \(victim.rawValue) (warren\(target); leader warren\(leader), publisher on warren\(publisherNode)) after \(killAfter) confirms; consumption resumed after "
                    + "\(resumedAfter.map { "\($0)" } ?? "—"); node back in \(restart); \(ids.count) confirmed, \(failures.withLock { $0.count }) not confirmed")
            #expect(resumedAfter.map { $0 < .seconds(30) } == true, "consumption resumed within 30 s of killing the \(victim.rawValue)")
            #expect(ids.count == total, "every publish confirmed after retries: \(failures.withLock { Array($0.prefix(3)) })")
            #expect(Set(ids).count == ids.count)
            #expect(try await inboxCount(prefix, database) == ids.count, "each event recorded once")
        }

        // MARK: Looking

        /// The three URLs, node `first` (1…3) first: where a new connection goes.
        static func urls(startingAt first: Int) -> String {
            (0..<3).map { "amqp://guest:guest@127.0.0.1:\(ports[(first - 1 + $0) % 3])/%2f" }.joined(separator: ",")
        }

        static func startConsumer(metricsPort: Int) throws -> WarrenProcess {
            let root = TestEnvironment.repositoryRoot.path
            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_AMQP_URL"] = urls
            environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
            environment["WARREN_TOPOLOGY"] = root + "/topology/topology.yaml"
            environment["WARREN_CATALOG"] = root + "/events"
            environment["WARREN_METRICS_ADDRESS"] = "127.0.0.1:\(metricsPort)"
            return WarrenProcess(pid: try spawn(
                TestEnvironment.warrenBinary, ["consume", "users.projection", "--log-format", "json"], environment: environment,
                output: NSTemporaryDirectory() + "warren-consume-cluster.log"))
        }

        static func landed(_ prefix: String, _ database: PostgresPool) async throws -> Int {
            try await database.withConnection { connection in
                Int(try await connection.query("SELECT count(*) FROM users WHERE id LIKE \(prefix + "-%")").first!.decode(Int64.self, at: 0))
            }
        }

        static func landed(ids: [String], _ database: PostgresPool) async throws -> Int {
            try await database.withConnection { connection in
                Int(try await connection.query("SELECT count(*) FROM users WHERE id = ANY(\(ConsumerHarness.array(ids))::text[])").first!.decode(Int64.self, at: 0))
            }
        }

        static func inboxCount(_ prefix: String, _ database: PostgresPool) async throws -> Int {
            try await database.withConnection { connection in
                Int(try await connection.query(
                    "SELECT count(*) FROM warren_inbox WHERE consumer = 'users.projection' AND message_id LIKE \(prefix + "-%")"
                ).first!.decode(Int64.self, at: 0))
            }
        }

        /// The node (1…3) a connection is on, from the endpoint it reports.
        static func node(of connection: AMQPConnection) throws -> Int {
            guard case .connected(let endpoint) = connection.state,
                let index = ports.firstIndex(where: { endpoint.contains(":\($0)") })
            else { throw TestFailure("publisher not connected: \(connection.state)") }
            return index + 1
        }

        /// The quorum queue's leader and members (1…3), from any node's management API.
        static func leaderAndMembers(_ queue: String) async throws -> (Int, [Int]) {
            let info = try await queueInfo(queue)
            func node(_ name: String) -> Int? { Int(name.dropFirst("warren".count).prefix(1)) }
            guard let leader = (info["leader"] as? String).flatMap(node), let members = (info["members"] as? [String])?.compactMap(node) else {
                throw TestFailure("no leader in \(info)")
            }
            return (leader, members)
        }

        static func members(_ queue: String) async throws -> [String] {
            (try await queueInfo(queue)["members"] as? [String]) ?? []
        }

        static func queueInfo(_ queue: String) async throws -> [String: Any] {
            var lastError: (any Error)?
            for port in [15672, 15673, 15674] {
                do {
                    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/queues/%2F/\(queue)")!)
                    request.setValue("Basic " + Data("guest:guest".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
                    request.timeoutInterval = 5
                    let (data, _) = try await URLSession.shared.data(for: request)
                    if let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], object["leader"] != nil { return object }
                } catch {
                    lastError = error
                }
            }
            throw TestFailure("no management API answered for \(queue): \(String(describing: lastError))")
        }
    }
}
