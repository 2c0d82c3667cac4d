import HTTPTypes
import Hummingbird
import Logging
import WarrenCore

/// Continues the caller's W3C trace (`traceparent`, `tracestate`) with a span of its own
/// for the request (a server span, exported when span export is on), or starts a new
/// trace, and handles the request in it
/// (`TraceContext.current`): the events it publishes carry it in their headers and every
/// log line it writes its `trace_id`. The answer's `traceresponse` header (W3C Trace
/// Context level 2) names the request's span.
public struct TraceContextMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let incoming = request.headers[HTTPField.Name.traceparent].flatMap {
            TraceContext(traceparent: $0, tracestate: request.headers[HTTPField.Name.tracestate])
        }
        // A server span named by the route template (never an id from the path).
        let name = "\(request.method.rawValue) \(context.endpointPath ?? "unmatched")"
        return try await TraceContext.withSpan(name, ofKind: .server, parent: incoming) { trace in
            var response = try await next(request, context)
            response.headers[HTTPField.Name.traceresponse] = trace.traceparent
            return response
        }
    }
}

extension HTTPField.Name {
    static let traceparent = HTTPField.Name("traceparent")!
    static let tracestate = HTTPField.Name("tracestate")!
    static let traceresponse = HTTPField.Name("traceresponse")!
}

extension Logger.MetadataProvider {
    /// `trace_id` and `span_id` of `TraceContext.current` on every log line written in it.
    public static let traceContext = Logger.MetadataProvider {
        guard let trace = TraceContext.current else { return [:] }
        return ["trace_id": .string(trace.traceID), "span_id": .string(trace.spanID)]
    }
}
