import HTTPTypes
import Hummingbird
import Metrics
import Locking

/// Counts every request by route template (`/v1/webhooks/{id}`, never the id itself, so
/// the label set stays small; `unmatched` when no route serves the path), method and
/// status, and times it: `warren_http_requests_total`, `warren_http_request_duration_seconds`.
/// Add it first, so it sees the final answer of every other middleware.
public struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let cache = Cache()

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        // Any other method is one label value, so a client cannot grow the series without end.
        let method =
            switch request.method {
            case .get, .head, .post, .put, .patch, .delete, .options: request.method.rawValue
            default: "other"
            }
        do {
            let response = try await next(request, context)
            record(route: context.endpointPath, method: method, status: Int(response.status.code), since: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500
            record(route: context.endpointPath, method: method, status: status, since: started)
            throw error
        }
    }

    private func record(route: String?, method: String, status: Int, since started: ContinuousClock.Instant) {
        // Hummingbird names what no route serves "NotFound" (never a path: those start with "/").
        let metrics = cache.metrics(route: route.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched", method: method, status: status)
        metrics.requests.increment()
        metrics.duration.record(duration: ContinuousClock.now - started)
    }

    /// The handles per (route, method, status): making one takes the registry's lock.
    final class Cache: Sendable {
        struct Key: Hashable {
            var route: String, method: String, status: Int
        }

        struct Handles: Sendable {
            let requests: Counter
            let duration: Timer
        }

        private let handles = Mutex<[Key: Handles]>([:])

        func metrics(route: String, method: String, status: Int) -> Handles {
            let key = Key(route: route, method: method, status: status)
            return handles.withLock { handles in
                if let known = handles[key] { return known }
                let made = Handles(
                    requests: Counter(label: "warren_http_requests_total", dimensions: [("route", route), ("method", method), ("status", "\(status)")]),
                    duration: Timer(label: "warren_http_request_duration_seconds", dimensions: [("route", route), ("method", method)]))
                handles[key] = made
                return made
            }
        }
    }
}
