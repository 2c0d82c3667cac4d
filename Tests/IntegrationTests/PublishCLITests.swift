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
            try publish(arguments, url: url, stdinBytes: Array(stdin.utf8))
        }

        static func publish(_ arguments: [String], url: String, stdinBytes: [UInt8]) throws -> Result {
            let directory = NSTemporaryDirectory() + "warren-cli-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try Data(stdinBytes).write(to: URL(fileURLWithPath: directory + "/in"))
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
            for queue in ["users.projection", "email.notifications", "webhooks.delivery"] {
                #expect(try await broker.depth(queue) == 1, "\(queue)")
            }
            #expect(try await broker.depth("payments.ledger") == 0)
            #expect(try await broker.depth("payments.customers") == 0, "disabled in the shipped topology")
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

        /// A line is parsed from its own bytes: invalid UTF-8 is reported, never repaired
        /// into U+FFFD and published; an overlong line is skipped without being held.
        @Test func aLineOfInvalidUTF8OrOverOneMiBIsRefusedNotRepaired() async throws {
            let broker = try await Broker.make()
            defer { Task { await broker.tearDown() } }
            var input = Array(#"{"type":"user.deleted","data":{"id":"ok-1"}}"#.utf8) + [0x0A]
            input += Array(#"{"type":"user.deleted","data":{"id":"bad-"#.utf8) + [0xFF, 0xFE] + Array(#""}}"#.utf8) + [0x0A]
            input += [UInt8](repeating: 0x20, count: (1 << 20) + 10) + [0x0A]
            input += Array(#"{"type":"user.deleted","data":{"id":"ok-2"}}"#.utf8)
            let result = try Self.publish(["--ndjson"], url: broker.url, stdinBytes: input)
            #expect(result.status == 1)
            #expect(result.stderr.contains("line 2: not valid JSON") && result.stderr.contains("invalid UTF-8"), "\(result.stderr)")
            #expect(result.stderr.contains("line 3: 1048586 bytes, longer than 1048576"), "\(result.stderr)")
            #expect(result.stderr.contains("published 2, failed 2"))
            #expect(try await broker.depth("users.projection") == 2)
        }

        /// NDJSON is streamed: the first window is confirmed (its ids printed) while stdin
        /// is still open, so a producer piping events in sees progress and memory stays flat.
        @Test func theFirstEventsAreConfirmedBeforeStdinEnds() async throws {
            let broker = try await Broker.make()
            defer { Task { await broker.tearDown() } }
            let directory = NSTemporaryDirectory() + "warren-stream-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            #expect(mkfifo(directory + "/in", 0o600) == 0)
            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_AMQP_URL"] = broker.url
            environment["WARREN_CATALOG"] = TestEnvironment.repositoryRoot.path + "/events"
            let command = "exec '\(TestEnvironment.warrenBinary)' publish --ndjson --window 3 < '\(directory)/in' > '\(directory)/out'"
            let pid = try spawn("/bin/sh", ["-c", command], environment: environment, output: directory + "/err")
            let writer = try #require(FileHandle(forWritingAtPath: directory + "/in"))
            func line(_ id: String) -> Data { Data((#"{"type":"user.deleted","data":{"id":"\#(id)"}}"# + "\n").utf8) }
            for id in ["s1", "s2", "s3"] { writer.write(line(id)) }
            try await eventually("the first window confirmed while stdin is open") {
                ((try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "").split(separator: "\n").count == 3
            }
            #expect(try await broker.depth("users.projection") == 3)
            for id in ["s4", "s5"] { writer.write(line(id)) }
            try writer.close()
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            #expect((status >> 8) & 0xFF == 0)
            #expect(((try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "").split(separator: "\n").count == 5)
            try await eventually("all five in the queue") { try await broker.depth("users.projection") == 5 }
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
