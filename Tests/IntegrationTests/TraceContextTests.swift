import Foundation
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
    }
}
