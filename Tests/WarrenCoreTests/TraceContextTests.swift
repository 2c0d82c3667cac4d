import Testing
import WarrenCore

@Suite struct TraceContextTests {
    static let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func parsesTheFieldsAndWritesVersion00() throws {
        let trace = try #require(TraceContext(traceparent: Self.parent, tracestate: "congo=t61rcWkgMzE"))
        #expect(trace.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" && trace.spanID == "00f067aa0ba902b7" && trace.flags == "01")
        #expect(trace.state == "congo=t61rcWkgMzE" && trace.traceparent == Self.parent)
        // A later version may carry more fields: read as version 00, the rest ignored.
        let future = try #require(TraceContext(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"))
        #expect(future.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    }

    @Test func refusesWhatTheSpecificationSaysToIgnore() {
        for invalid in [
            "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            #expect(TraceContext(traceparent: invalid) == nil, "\(invalid)")
        }
        #expect(TraceContext(traceparent: Self.parent, tracestate: "bad\u{1}state")?.state == nil, "an unusable tracestate is dropped")
        #expect(TraceContext(traceparent: Self.parent, tracestate: String(repeating: "a", count: 513))?.state == nil, "over 512 characters")
        #expect(TraceContext(traceparent: "00-zz", tracestate: "a=1") == nil, "a tracestate alone is no trace")
    }

    @Test func aChildKeepsTheTraceAndTakesANewSpan() throws {
        let trace = try #require(TraceContext(traceparent: Self.parent, tracestate: "a=1"))
        let child = trace.child()
        #expect(child.traceID == trace.traceID && child.flags == trace.flags && child.state == "a=1")
        #expect(child.spanID != trace.spanID && TraceContext.isValid(child.traceparent))
        let root = TraceContext.root()
        #expect(TraceContext.isValid(root.traceparent) && root.traceID != trace.traceID && root.flags == "01")
    }

    @Test func anEventRunsItsWorkInANewSpanOfItsTrace() async throws {
        var event = CloudEvent(type: "user.created", source: "/t", data: nil)
        #expect(await event.inTrace("test") { TraceContext.current } == nil, "no trace: none invented")
        event.traceContext = TraceContext(traceparent: Self.parent)
        let inside = try #require(await event.inTrace("test") { TraceContext.current })
        #expect(inside.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" && inside.spanID != "00f067aa0ba902b7")
    }
}
