#if canImport(Glibc)
import Glibc
#endif
/// W3C Trace Context (`traceparent` + `tracestate`) as Warren carries it: from an HTTP
/// request into the events it publishes (AMQP headers), from a delivery into the consumer's
/// logs (`trace_id`, `span_id`) and into the provider calls and outbound webhooks it makes.
///
/// Each hop that does work continues the trace with a new span id of its own (`child()`),
/// so the receiver sees the same trace id and its caller's span as the parent.
public struct TraceContext: Sendable, Hashable {
    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// 16 lowercase hex digits, not all zero: the span that made the call.
    public let spanID: String
    /// The trace flags (bit 0: sampled), 2 hex digits.
    public let flags: String
    /// Vendor state, passed on as received (at most 512 printable ASCII characters).
    public let state: String?

    /// The context of the task now: the request or message being handled, if it came with one.
    @TaskLocal public static var current: TraceContext?

    /// Parses a `traceparent` (`version-traceid-parentid-flags`); nil for anything the W3C
    /// specification says to ignore (and an unusable `tracestate` is dropped).
    public init?(traceparent: String, tracestate: String? = nil) {
        guard Self.isValid(traceparent) else { return nil }
        let parts = traceparent.split(separator: "-", maxSplits: 4, omittingEmptySubsequences: false)
        traceID = String(parts[1])
        spanID = String(parts[2])
        flags = String(parts[3].prefix(2))
        state = tracestate.flatMap { $0.utf8.count <= 512 && $0.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && !$0.isEmpty ? $0 : nil }
    }

    private init(traceID: String, spanID: String, flags: String, state: String?) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
        self.state = state
    }

    /// A new trace (for work that arrived without one), sampled.
    public static func root() -> TraceContext {
        TraceContext(traceID: randomHex(bytes: 16), spanID: randomHex(bytes: 8), flags: "01", state: nil)
    }

    /// The same trace, with a new span id for the work done here.
    public func child() -> TraceContext {
        TraceContext(traceID: traceID, spanID: Self.randomHex(bytes: 8), flags: flags, state: state)
    }

    /// Version 00, as this implementation writes it.
    public var traceparent: String { "00-\(traceID)-\(spanID)-\(flags)" }

    /// `version-traceid-parentid-flags` in lowercase hex, with a non-zero trace and parent
    /// id; version `ff` is invalid, a future version may carry more after a dash.
    public static func isValid(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return false }
        guard bytes.count == 55 || (bytes[55] == UInt8(ascii: "-") && !(bytes[0] == UInt8(ascii: "0") && bytes[1] == UInt8(ascii: "0"))) else { return false }
        func hex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        }
        func zero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == UInt8(ascii: "0") } }
        return hex(0..<2) && hex(3..<35) && hex(36..<52) && hex(53..<55) && !(bytes[0] == UInt8(ascii: "f") && bytes[1] == UInt8(ascii: "f"))
            && !zero(3..<35) && !zero(36..<52) && bytes.count <= 512 && bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// `bytes` (8 or 16) random bytes in hex, not all zero: one `arc4random_buf` call
    /// (glibc 2.36+: the kernel's `getrandom`; `SystemRandomNumberGenerator` makes one
    /// system call per 8 bytes).
    static func randomHex(bytes count: Int) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
            while true {
                arc4random_buf(buffer.baseAddress!, count)
                if buffer.contains(where: { $0 != 0 }) { return Hex.encode(buffer: UnsafeBufferPointer(buffer)) }
            }
        }
    }
}

extension CloudEvent {
    /// Runs `body` as a new span `name` of the event's trace (`TraceContext.current`; a
    /// consumer span, exported when span export is on), so its log lines carry the event's
    /// `trace_id` and its provider calls a `traceparent`; as is when the event carries no trace.
    public func inTrace<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
        guard let trace = traceContext else { return try await body() }
        return try await TraceContext.withSpan(name, ofKind: .consumer, parent: trace) { _ in try await body() }
    }
}
