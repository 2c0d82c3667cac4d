import HTTPTypes
import Hummingbird
import NIOCore
import WarrenCore

/// `GET /metrics`, `/healthz` and `/readyz`, on `warren serve`'s and `warren run`'s HTTP
/// port and on the metrics server of `warren consume` and `warren outbox relay`.
///
/// - `/healthz`: `200 {"status":"ok"}` while the process runs (liveness).
/// - `/readyz`: `200 {"status":"ready"}`, or `503 {"status":"unavailable","problems":{check: why}}`
///   with `Retry-After: 5` (readiness: take no traffic, do not restart).
/// - `/metrics`: the Prometheus text format.
public enum ObservabilityRoutes {
    public static let routes = ["GET /healthz", "GET /readyz", "GET /metrics"]

    public static func add<Context: RequestContext>(to router: Router<Context>, readiness: Readiness) {
        router.get("/healthz") { _, _ in json(#"{"status":"ok"}"#) }
        router.get("/readyz") { _, _ in await ready(readiness) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: WarrenMetrics.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: WarrenMetrics.exposition())))
        }
    }

    static func ready(_ readiness: Readiness) async -> Response {
        let problems = await readiness.problems()
        guard problems.isEmpty else {
            let body = JSONValue.object(["status": "unavailable", "problems": .object(problems.mapValues { .string($0) })])
            var response = json(String(decoding: body.serialized(), as: UTF8.self), status: .serviceUnavailable)
            response.headers[.retryAfter] = "5"
            return response
        }
        return json(#"{"status":"ready"}"#)
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
