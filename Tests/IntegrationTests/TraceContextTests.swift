import Foundation
import ProviderFakes
import Testing
import WarrenCore

extension Integration {
    /// One trace id followed across processes: an HTTP request to `warren serve` → the
    /// event's AMQP headers → `warren consume email.notifications` (its log lines) → the
    /// request it makes to SendGrid (the fake's `traceparent`).
    @Suite struct TraceContextTests {
        @Test func aTraceGoesFromAnHTTPPublishToTheSendGridRequest() async throws {
            let harness = try await ConsumerHarness.make(consumer: "email.notifications", bindings: ["user.created"])
            defer { Task { await harness.tearDown() } }
            let sendGrid = try await FakeSendGrid.start()
            defer { sendGrid.stop() }
            let metricsPort = try freePort()
            let consumer = try WarrenProcess.consume(
                harness,
                environment: [
                    "SENDGRID_API_KEY": sendGrid.apiKey, "WARREN_SENDGRID_URL": sendGrid.baseURL, "WARREN_METRICS_ADDRESS": "127.0.0.1:\(metricsPort)",
                ])
            defer { _ = consumer.kill(SIGTERM) }
            let key = try HTTPServerTests.createKey(TestEnvironment.uniqueName("trace"), "--events", "user.*")
            let server = try await HTTPServerTests.Server.start(harness)
            defer { _ = server.stop() }

            let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let callerSpan = "00f067aa0ba902b7"
            let body = #"{"type":"user.created","data":{"id":"trace-1","name":"Ada","email":"ada.trace@example.com"}}"#
            let answer = try await server.request(
                "POST", "/v1/events", body: Array(body.utf8),
                headers: ["Authorization": "Bearer \(key)", "traceparent": "00-\(traceID)-\(callerSpan)-01", "tracestate": "vendor=1"])
            #expect(answer.status == 202)
            let requestSpan = try #require(answer.traceresponse.flatMap { TraceContext(traceparent: $0) }, "no traceresponse")
            #expect(requestSpan.traceID == traceID && requestSpan.spanID != callerSpan, "the request's own span of the caller's trace")

            try await eventually("SendGrid got the welcome email") { sendGrid.mail.contains { $0.to == "ada.trace@example.com" } }
            let mail = try #require(sendGrid.mail.first { $0.to == "ada.trace@example.com" })
            let trace = try #require(mail.traceparent.flatMap { TraceContext(traceparent: $0) }, "SendGrid saw no traceparent")
            #expect(trace.traceID == traceID, "the caller's trace id reached SendGrid")
            #expect(trace.spanID != callerSpan && trace.spanID != requestSpan.spanID, "each hop continues the trace with a span of its own")
            #expect(mail.tracestate == "vendor=1", "tracestate travels with it")

            // The consumer's log lines for that message carry the trace id.
            let log = NSTemporaryDirectory() + "warren-consume-\(harness.vhost).log"
            let lines = (try String(contentsOfFile: log, encoding: .utf8)).split(separator: "\n")
                .compactMap { try? JSONValue(parsing: Array($0.utf8)) }
            let sent = try #require(lines.first { $0["message"]?.stringValue == "email.sent" }, "no email.sent line")
            #expect(sent["trace_id"]?.stringValue == traceID)

            // Without a traceparent the server starts a trace of its own, and says which.
            let untraced = #"{"type":"user.created","data":{"id":"trace-2","name":"Bob","email":"bob.trace@example.com"}}"#
            let fresh = try await server.publish(untraced, key: key)
            #expect(fresh.status == 202)
            try await eventually("SendGrid got Bob's email") { sendGrid.mail.contains { $0.to == "bob.trace@example.com" } }
            let second = try #require(sendGrid.mail.first { $0.to == "bob.trace@example.com" }?.traceparent.flatMap { TraceContext(traceparent: $0) })
            #expect(second.traceID != traceID && second.traceID == fresh.traceresponse.flatMap { TraceContext(traceparent: $0) }?.traceID)

            // The provider calls, counted by status.
            let scrape = try await MetricsTests.scrape(metricsPort)
            #expect(scrape[#"warren_provider_requests_total{provider="sendgrid",status="202"}"#] == 2)
            #expect(scrape[#"warren_provider_request_duration_seconds_count{provider="sendgrid"}"#] == 2)
        }

        /// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans of that path are exported: the
        /// HTTP request's server span, the consumer's span for the event and its SendGrid
        /// call, in one trace, each the parent of the next, from both processes.
        @Test func spansAreExportedOverOTLPWhenAnEndpointIsSet() async throws {
            let harness = try await ConsumerHarness.make(consumer: "email.notifications", bindings: ["user.created"])
            defer { Task { await harness.tearDown() } }
            let sendGrid = try await FakeSendGrid.start()
            let collector = try await FakeCollector.start()
            defer { sendGrid.stop(); collector.stop() }
            let otel = [
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "100",
            ]
            let consumer = try WarrenProcess.consume(
                harness,
                environment: otel.merging(["SENDGRID_API_KEY": sendGrid.apiKey, "WARREN_SENDGRID_URL": sendGrid.baseURL, "OTEL_SERVICE_NAME": "warren-email"]) { $1 })
            defer { _ = consumer.kill(SIGTERM) }
            let key = try HTTPServerTests.createKey(TestEnvironment.uniqueName("otlp"), "--events", "user.*")
            let server = try await HTTPServerTests.Server.start(harness, environment: otel)
            defer { _ = server.stop() }

            let traceID = "5bf92f3577b34da6a3ce929d0e0e4737"
            let callerSpan = "10f067aa0ba902b8"
            let body = #"{"type":"user.created","data":{"id":"otlp-1","name":"Ada","email":"ada.otlp@example.com"}}"#
            let answer = try await server.request(
                "POST", "/v1/events", body: Array(body.utf8), headers: ["Authorization": "Bearer \(key)", "traceparent": "00-\(traceID)-\(callerSpan)-01"])
            #expect(answer.status == 202)
            let requestSpan = try #require(answer.traceresponse.flatMap { TraceContext(traceparent: $0) })
            try await eventually("SendGrid got the email") { sendGrid.mail.contains { $0.to == "ada.otlp@example.com" } }
            let call = try #require(sendGrid.mail.first { $0.to == "ada.otlp@example.com" }?.traceparent.flatMap { TraceContext(traceparent: $0) })

            try await eventually(timeout: .seconds(15), "the three spans reached the collector") {
                Set(collector.spans.filter { $0.traceID == traceID }.map(\.kind)).isSuperset(of: [2, 3, 5])
            }
            let spans = collector.spans.filter { $0.traceID == traceID }
            let http = try #require(spans.first { $0.kind == 2 })
            let handled = try #require(spans.first { $0.kind == 5 })
            let sent = try #require(spans.first { $0.kind == 3 })
            #expect(http.name == "POST /v1/events" && http.service == "warren", "\(http)")
            #expect(http.parentSpanID == callerSpan && http.spanID == requestSpan.spanID, "the server span continues the caller's and is the one traceresponse names")
            #expect(handled.name == "email.notifications user.created" && handled.service == "warren-email", "\(handled)")
            #expect(handled.parentSpanID == http.spanID, "the consumer's span is a child of the request's (through the AMQP headers)")
            #expect(sent.name == "sendgrid POST /v3/mail/send" && sent.parentSpanID == handled.spanID, "\(sent)")
            #expect(sent.spanID == call.spanID, "SendGrid got the client span as its traceparent")
        }
    }
}
