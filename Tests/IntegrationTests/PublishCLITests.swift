import AMQP
import Foundation
import Testing
import Topology

extension Integration {
    /// `warren publish` as a user runs it: a real process against the real broker, with
    /// the real topology applied in a vhost of its own.
    @Suite struct PublishCLITests {
        /// A vhost with the release topology, and a way to run `warren publish` against it.
        struct Broker {
            let vhost: String
            let url: String
            let connection: AMQPConnection
            let channel: AMQPChannel

            static func make() async throws -> Broker {
                let vhost = TestEnvironment.uniqueName("cli")
                try TestEnvironment.services("ctl", "add_vhost", vhost)
                try TestEnvironment.services("ctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
                let url = "amqp://guest:guest@127.0.0.1:5672/\(vhost)"
                let connection = try await AMQPConnection.forTests(url: url)
                let channel = try await connection.openChannel()
                let topology = try Topology.load(path: TestEnvironment.repositoryRoot.appendingPathComponent("topology/topology.yaml").path)
                _ = try await TopologyApplier(channel: channel, logger: TestEnvironment.logger).apply(topology.declarations)
                return Broker(vhost: vhost, url: url, connection: connection, channel: channel)
            }

            func tearDown() async {
                await connection.close()
                _ = try? TestEnvironment.services("ctl", "delete_vhost", vhost)
            }

            func depth(_ queue: String) async throws -> Int { Int(try await channel.queueInfo(queue).messageCount) }
        }

        struct Result {
            var status: Int32
            var stdout: String
            var stderr: String
        }

        /// Runs `warren publish ARGS` with `stdin` as its input.
        static func publish(_ arguments: [String], url: String, stdin: String = "") throws -> Result {
            let directory = NSTemporaryDirectory() + "warren-cli-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try stdin.write(toFile: directory + "/in", atomically: true, encoding: .utf8)
            let root = TestEnvironment.repositoryRoot.path
            let command = "'\(TestEnvironment.warrenBinary)' publish \(arguments.map { "'\($0)'" }.joined(separator: " ")) < '\(directory)/in' > '\(directory)/out' 2> '\(directory)/err'"
            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_AMQP_URL"] = url
            environment["WARREN_CATALOG"] = root + "/events"
            let pid = try spawn("/bin/sh", ["-c", command], environment: environment, output: directory + "/sh")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return Result(
                status: (status >> 8) & 0xFF,
                stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
        }

        @Test func anEventPublishedByTheCLIReachesExactlyTheMatchingQueues() async throws {
            let broker = try await Broker.make()
            defer { Task { await broker.tearDown() } }
            let result = try Self.publish(
                ["user.created", "--data", #"{"id":"u1","name":"Ada","email":"ada@example.com"}"#], url: broker.url)
            #expect(result.status == 0, "\(result.stderr)")
            let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(UUID(uuidString: id) != nil, "prints the event id")
            for queue in ["users.projection", "email.notifications", "payments.customers", "webhooks.delivery"] {
                #expect(try await broker.depth(queue) == 1, "\(queue)")
            }
            #expect(try await broker.depth("payments.ledger") == 0)
            let delivery = try #require(try await broker.channel.get(queue: "users.projection"))
            #expect(delivery.properties.messageID == id)
            #expect(delivery.properties.contentType == "application/cloudevents+json")
            #expect(delivery.properties.isPersistent)
            #expect(delivery.routingKey == "user.created")
        }

        @Test func tenThousandNDJSONLinesAreAllConfirmed() async throws {
            let broker = try await Broker.make()
            defer { Task { await broker.tearDown() } }
            let lines = (0..<10_000).map { #"{"type":"user.deleted","data":{"id":"u\#($0)"}}"# }
            let result = try Self.publish(["--ndjson"], url: broker.url, stdin: lines.joined(separator: "\n") + "\n")
            #expect(result.status == 0, "\(result.stderr.suffix(500))")
            #expect(result.stdout.split(separator: "\n").count == 10_000)
            #expect(result.stderr.contains("published 10000, failed 0"))
            try await eventually("all in the queue") { try await broker.depth("users.projection") == 10_000 }
        }

        @Test func aBrokenLineIsReportedWithItsNumberAndTheRestStillPublish() async throws {
            let broker = try await Broker.make()
            defer { Task { await broker.tearDown() } }
            let input = """
                {"type":"user.deleted","data":{"id":"a"}}
                {"type":"user.deleted","data":
                {"type":"user.deleted","data":{"id":"c"}}
                {"type":"payment.succeeded","data":{"payment_id":"p","user_id":"u","amount":1.5,"currency":"EUR"}}
                {"type":"no.such.type","data":{}}
                """
            let result = try Self.publish(["--ndjson"], url: broker.url, stdin: input)
            #expect(result.status == 1)
            #expect(result.stderr.contains("line 2: not valid JSON"))
            #expect(result.stderr.contains("line 4:") && result.stderr.contains("data.amount: must be an integer"))
            #expect(result.stderr.contains("line 5:") && result.stderr.contains("type"))
            #expect(result.stderr.contains("published 2, failed 3"))
            #expect(result.stdout.split(separator: "\n").count == 2)
            #expect(try await broker.depth("users.projection") == 2)
        }

        @Test func withNoBrokerPublishFailsWithExitOneWithinItsTimeout() throws {
            let started = ContinuousClock.now
            let result = try Self.publish(
                ["user.deleted", "--data", #"{"id":"x"}"#, "--timeout", "3"], url: "amqp://guest:guest@127.0.0.1:1/%2f?connection_timeout=3000")
            #expect(result.status == 1)
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
            #expect(result.stderr.hasPrefix("warren: "))
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }
}
