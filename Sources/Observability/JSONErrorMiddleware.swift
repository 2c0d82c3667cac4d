import Hummingbird
import WarrenCore

/// Answers what no route serves (404, 405 and other router errors) with the same JSON
/// error body as every other refusal: `{"error": {"code", "message"}}`.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let status = error.status
            let (code, message) =
                switch status {
                case .notFound: ("unknown_route", "no route \(request.method) \(request.uri.path)")
                case .methodNotAllowed: ("method_not_allowed", "\(request.uri.path) does not take \(request.method)")
                default: ("http_error", status.reasonPhrase.isEmpty ? "HTTP \(status.code)" : status.reasonPhrase)
                }
            let body = JSONValue.object(["error": .object(["code": .string(code), "message": .string(message)])])
            return ObservabilityRoutes.json(String(decoding: body.serialized(), as: UTF8.self), status: status)
        }
    }
}
