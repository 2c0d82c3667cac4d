import Synchronization
import Tracing

/// Whether spans are recorded and exported (OTLP, set up by `Observability/WarrenTracing`
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set). Off: spans are only ids (`TraceContext`),
/// as cheap as before.
public enum SpanExport {
    private static let enabled = Atomic<Bool>(false)

    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Called once a tracer is bootstrapped (`InstrumentationSystem.bootstrap`).
    public static func enable() { enabled.store(true, ordering: .relaxed) }
}

extension TraceContext {
    /// Runs `body` as a new span `name` of `parent`'s trace (a new trace without one), with
    /// the span as `TraceContext.current`: what it publishes, logs and calls carries it.
    ///
    /// With span export on, the span is the tracer's (swift-distributed-tracing): timed,
    /// marked failed when `body` throws, exported, and its ids are the tracer's. Off, it is
    /// `parent.child()` (or `root()`): the same ids on the wire, nothing recorded.
    public static func withSpan<T>(
        _ name: String, ofKind kind: SpanKind, parent: TraceContext?, _ body: (TraceContext) async throws -> T
    ) async rethrows -> T {
        guard SpanExport.isEnabled else {
            let trace = parent?.child() ?? .root()
            return try await $current.withValue(trace) { try await body(trace) }
        }
        var context = ServiceContext.topLevel
        if let parent { InstrumentationSystem.instrument.extract(parent.headers, into: &context, using: HeaderCarrier()) }
        return try await Tracing.withSpan(name, context: context, ofKind: kind) { span in
            var headers: [String: String] = [:]
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HeaderCarrier())
            let trace = headers["traceparent"].flatMap { TraceContext(traceparent: $0, tracestate: headers["tracestate"] ?? parent?.state) }
                ?? parent?.child() ?? .root()
            return try await $current.withValue(trace) { try await body(trace) }
        }
    }

    /// `traceparent` and, when there is one, `tracestate`.
    public var headers: [String: String] {
        var headers = ["traceparent": traceparent]
        if let state { headers["tracestate"] = state }
        return headers
    }
}

/// W3C headers in a dictionary, for the tracer's propagator.
struct HeaderCarrier: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
