import Foundation
import Hummingbird
import ProviderFakes
import Locking
import WarrenCore

/// An OpenTelemetry collector's OTLP/HTTP traces endpoint (`POST /v1/traces`) on loopback,
/// JSON encoding (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`): it keeps every span it is
/// sent, with the service that sent it. Ids arrive as swift-protobuf writes bytes in JSON
/// (base64) and are kept as hex.
final class FakeCollector: Sendable {
    struct Span: Sendable, Equatable {
        var service: String
        var name: String
        var traceID: String
        var spanID: String
        var parentSpanID: String?
        /// OTLP's SpanKind: 2 server, 3 client, 5 consumer.
        var kind: Int
    }

    let server: FakeProviderServer
    private let received = Mutex<[Span]>([])

    var spans: [Span] { received.withLock { $0 } }
    var endpoint: String { server.baseURL }

    static func start() async throws -> FakeCollector {
        let box = Mutex<FakeCollector?>(nil)
        let server = try await FakeProviderServer.start { router in
            router.post("/v1/traces") { request, _ in
                let body = try await request.body.collect(upTo: 16 << 20)
                box.withLock { $0 }!.store(Array(buffer: body))
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
            }
        }
        let collector = FakeCollector(server: server)
        box.withLock { $0 = collector }
        return collector
    }

    private init(server: FakeProviderServer) { self.server = server }

    func stop() { server.stop() }

    private func store(_ body: [UInt8]) {
        guard let json = try? JSONValue(parsing: body) else { return }
        var spans: [Span] = []
        for resource in Self.array(json["resourceSpans"]) {
            let service = Self.array(resource["resource"]?["attributes"])
                .first { $0["key"]?.stringValue == "service.name" }?["value"]?["stringValue"]?.stringValue ?? "?"
            for scope in Self.array(resource["scopeSpans"]) {
                for span in Self.array(scope["spans"]) {
                    guard let trace = Self.hex(span["traceId"]), let id = Self.hex(span["spanId"]) else { continue }
                    spans.append(Span(
                        service: service, name: span["name"]?.stringValue ?? "", traceID: trace, spanID: id,
                        parentSpanID: Self.hex(span["parentSpanId"]), kind: Int(span["kind"]?.intValue ?? 0)))
                }
            }
        }
        received.withLock { $0 += spans }
    }

    static func array(_ value: JSONValue?) -> [JSONValue] {
        if case .array(let items)? = value { items } else { [] }
    }

    /// An id as swift-protobuf's JSON writes it (base64), or as the OTLP spec does (hex).
    static func hex(_ value: JSONValue?) -> String? {
        guard let text = value?.stringValue, !text.isEmpty else { return nil }
        if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let data = Data(base64Encoded: text) else { return nil }
        return data.map { String(format: "%02x", $0) }.joined()
    }
}
