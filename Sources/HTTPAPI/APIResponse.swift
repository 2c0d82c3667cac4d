import HTTPTypes
import Hummingbird
import NIOCore
import WarrenCore

/// A refusal as the HTTP API answers it: a status and the JSON body
/// `{"error": {"code", "message"[, "field"]}}`, with `Retry-After` where waiting helps.
public struct APIFailure: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfter = retryAfter
    }

    var response: Response {
        var error: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let field { error["field"] = .string(field) }
        var response = APIResponse.json(.object(["error": .object(error)]), status: status)
        if let retryAfter { response.headers[.retryAfter] = "\(retryAfter)" }
        return response
    }

    /// 400 for an event the catalog or the wire format refuses, naming the field.
    static func invalid(_ error: EventError, prefix: String = "") -> APIFailure {
        APIFailure(.badRequest, "invalid_event", "\(error.message)", field: error.field.map { prefix + $0 } ?? (prefix.isEmpty ? nil : String(prefix.dropLast())))
    }
}

enum APIResponse {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }
}
