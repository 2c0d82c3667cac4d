import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import WarrenCore

extension Integration {
    /// `/metrics`, `/healthz` and `/readyz` of real processes: known work in, exact counts out.
    @Suite struct MetricsTests {
        /// One scrape: every sample by its series (`name{label="value",…}`).
        struct Scrape {
            var samples: [String: Double] = [:]
            var text: String

            init(_ text: String) {
                self.text = text
                for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                    guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
                    samples[String(line[..<space])] = value
                }
            }

            subscript(_ series: String) -> Double? { samples[series] }
        }

        static func get(_ port: Int, _ path: String) async throws -> (status: Int, body: String, contentType: String?) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.timeoutInterval = 10
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = response as! HTTPURLResponse
            return (http.statusCode, String(decoding: data, as: UTF8.self), http.value(forHTTPHeaderField: "Content-Type"))
        }

        static func scrape(_ port: Int) async throws -> Scrape {
            let answer = try await get(port, "/metrics")
            guard answer.status == 200 else { throw TestFailure("/metrics answered \(answer.status)") }
            return Scrape(answer.body)
        }

        /// `warren consume users.projection --metrics-address`: 5 new events, one of them
        /// sent twice, one that is not JSON and one over the 1 MiB limit. Each delivery is
        /// counted once under its outcome, the two refused ones reached the DLQ (the garbage
        /// through a confirmed publish, the oversized one rejected unread and dead-lettered by
        /// the broker), and the queue gauges read the DLQ's depth from the broker.
        @Test func aConsumerCountsEachOutcomeExactly() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let port = try freePort()
            let process = try WarrenProcess.consume(
                harness, environment: ["WARREN_METRICS_ADDRESS": "127.0.0.1:\(port)", "WARREN_QUEUE_METRICS_INTERVAL": "0.2"])
            var stopped = false
            defer { if !stopped { _ = process.kill(SIGKILL) } }
            try await eventually("readyz answers ready once subscribed") { (try? await Self.get(port, "/readyz"))?.status == 200 }
            let ready = try await Self.get(port, "/readyz")
            #expect(ready.body == #"{"status":"ready"}"# && ready.contentType == "application/json")
            #expect(try await Self.get(port, "/healthz").body == #"{"status":"ok"}"#)

            let events = (1...5).map { userCreated("metrics-\($0)-\(UUID().uuidString.prefix(6))") }
            try await harness.publish(events + [events[2]])
            try await harness.publishRaw(Array("not json".utf8), routingKey: "user.created", messageID: "metrics-garbage")
            try await harness.publishRaw([UInt8](repeating: 0x20, count: (1 << 20) + 1), routingKey: "user.created", messageID: "metrics-big")

            let consumer = #"consumer="users.projection""#
            func messages(_ outcome: String) -> String { #"warren_consumer_messages_total{\#(consumer),outcome="\#(outcome)"}"# }
            try await eventually("all 8 deliveries settled") {
                let scrape = try await Self.scrape(port)
                let settled = ["processed", "duplicate", "dead_lettered", "rejected_oversize", "retried"].map { scrape[messages($0)] ?? 0 }
                return settled.reduce(0, +) == 8
            }
            try await eventually("the queue gauges saw the DLQ") {
                try await Self.scrape(port)[#"warren_queue_messages{\#(consumer),queue="\#(harness.spec.deadLetterQueueName)"}"#] == 2
            }
            let scrape = try await Self.scrape(port)
            #expect(scrape[messages("received")] == 8)
            #expect(scrape[messages("processed")] == 5)
            #expect(scrape[messages("duplicate")] == 1)
            #expect(scrape[messages("dead_lettered")] == 1)
            #expect(scrape[messages("rejected_oversize")] == 1)
            #expect(scrape[messages("retried")] == 0)
            #expect(scrape[#"warren_consumer_batch_size_sum{\#(consumer)}"#] == 8)
            #expect((scrape[#"warren_consumer_batch_duration_seconds_count{\#(consumer)}"#] ?? 0) >= 1)
            #expect((scrape[#"warren_consumer_handler_duration_seconds_count{\#(consumer)}"#] ?? 0) >= 1)
            #expect(scrape[#"warren_consumer_subscribed{\#(consumer)}"#] == 1)
            #expect(scrape[#"warren_queue_messages{\#(consumer),queue="\#(harness.spec.queueName)"}"#] == 0)
            #expect(scrape[#"warren_queue_consumers{\#(consumer),queue="\#(harness.spec.queueName)"}"#] == 1)
            let connection = #"connection="warren users.projection""#
            #expect(scrape[#"warren_amqp_connected{\#(connection)}"#] == 1)
            #expect(scrape[#"warren_amqp_blocked{\#(connection)}"#] == 0)
            #expect(scrape[#"warren_amqp_reconnects_total{\#(connection)}"#] == 0)
            // The garbage's dead-lettered copy; the oversized one was rejected unread and
            // dead-lettered by the broker.
            #expect(scrape[#"warren_amqp_publishes_total{\#(connection),outcome="confirmed"}"#] == 1, "one dead-lettered copy")
            #expect(scrape[#"warren_amqp_publish_confirm_duration_seconds_count{\#(connection)}"#] == 1)
            #expect(scrape.text.contains("# TYPE warren_consumer_batch_duration_seconds histogram"))
            #expect(try await Self.get(port, "/metrics").contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(try await harness.drainDeadLetters().count == 2)

            let unknown = try await Self.get(port, "/nope")
            #expect(unknown.status == 404 && unknown.body.contains(#""code":"unknown_route""#))
            let after = try await Self.scrape(port)
            #expect(after[#"warren_http_requests_total{route="/readyz",method="GET",status="200"}"#] == 2)
            #expect(after[#"warren_http_requests_total{route="unmatched",method="GET",status="404"}"#] == 1)

            stopped = true
            #expect(process.kill(SIGTERM) == 0, "SIGTERM: clean exit")
        }

        /// A consumer that lost its broker is not ready, and says why (the broker, and its
        /// consumer no longer subscribed); back, it is ready again, and the reconnect is counted.
        @Test func readinessFollowsTheBrokerAndCountsTheReconnect() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let port = try freePort()
            let process = try WarrenProcess.consume(harness, environment: ["WARREN_METRICS_ADDRESS": "127.0.0.1:\(port)"])
            defer { _ = process.kill(SIGKILL) }
            try await eventually("ready") { (try? await Self.get(port, "/readyz"))?.status == 200 }
            try TestEnvironment.services("stop", "rabbitmq")
            var restarted = false
            defer { if !restarted { _ = try? TestEnvironment.services("start", "rabbitmq") } }
            try await eventually("not ready without the broker") { try await Self.get(port, "/readyz").status == 503 }
            let down = try await Self.get(port, "/readyz")
            let problems = try JSONValue(parsing: Array(down.body.utf8))["problems"]
            #expect(problems?["broker"]?.stringValue == "not connected to the broker", "\(down.body)")
            #expect(problems?["consumers"]?.stringValue == "not subscribed: users.projection", "\(down.body)")
            #expect(problems?["database"] == nil)
            #expect(try await Self.scrape(port)[#"warren_amqp_connected{connection="warren users.projection"}"#] == 0)
            try TestEnvironment.services("start", "rabbitmq")
            restarted = true
            try await eventually(timeout: .seconds(60), "ready again") { (try? await Self.get(port, "/readyz"))?.status == 200 }
            let scrape = try await Self.scrape(port)
            #expect(scrape[#"warren_amqp_reconnects_total{connection="warren users.projection"}"#] == 1)
            #expect(scrape[#"warren_amqp_connected{connection="warren users.projection"}"#] == 1)
        }

        /// `warren serve`: requests by route template and status, and its publishes.
        @Test func theHTTPServerCountsRequestsByRouteAndStatus() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let key = try HTTPServerTests.createKey(TestEnvironment.uniqueName("metrics"), "--events", "user.*")
            let server = try await HTTPServerTests.Server.start(harness)
            defer { _ = server.stop() }
            for id in ["m-1", "m-2"] {
                #expect(try await server.publish(HTTPServerTests.userJSON(id), key: key).status == 202)
            }
            #expect(try await server.publish(HTTPServerTests.userJSON("m-3"), key: nil).status == 401)
            #expect(try await server.request("GET", "/nope").status == 404)
            #expect(try await server.request("GET", "/v1/webhooks/wh_x", headers: ["Authorization": "Bearer \(key)"]).status == 403)
            let scrape = try await Self.scrape(server.port)
            func requests(_ route: String, _ method: String, _ status: Int) -> Double? {
                scrape[#"warren_http_requests_total{route="\#(route)",method="\#(method)",status="\#(status)"}"#]
            }
            #expect(requests("/v1/events", "POST", 202) == 2)
            #expect(requests("/v1/events", "POST", 401) == 1)
            #expect(requests("unmatched", "GET", 404) == 1)
            #expect(requests("/v1/webhooks/{id}", "GET", 403) == 1, "the route's template, never the id")
            #expect(scrape[#"warren_amqp_publishes_total{connection="warren serve",outcome="confirmed"}"#] == 2)
            #expect(try await harness.messages(in: harness.spec.queueName) == 2)
        }
    }
}
