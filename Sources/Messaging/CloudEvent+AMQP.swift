import AMQP
import WarrenCore

/// What an event looks like on the wire: body, routing key and properties.
public struct AMQPMessage: Sendable {
    public var routingKey: String
    public var properties: AMQPProperties
    public var body: [UInt8]
}

extension CloudEvent {
    /// Routing key = `type`; `message_id` = `id`; `type`; `timestamp`; `app_id` =
    /// `source`; persistent; the structured JSON as body. The `traceparent` and
    /// `tracestate` headers: the one given, else the event's own, else the trace of the
    /// task publishing it (`TraceContext.current`, e.g. the HTTP request's). `body`: bytes
    /// to publish instead of encoding the event again — the JSON it was decoded from, which
    /// may carry what this type does not keep (extension attributes, a number's exact
    /// digits, a time's full precision).
    public func amqpMessage(correlationID: String? = nil, traceparent: String? = nil, headers: AMQPTable = [:], body: [UInt8]? = nil) -> AMQPMessage {
        var headers = headers
        if let traceparent {
            headers["traceparent"] = .string(traceparent)
        } else if let trace = traceContext ?? TraceContext.current {
            headers["traceparent"] = .string(trace.traceparent)
            if let state = trace.state { headers["tracestate"] = .string(state) }
        }
        let properties = AMQPProperties(
            contentType: Self.contentType, headers: headers.isEmpty ? nil : headers,
            deliveryMode: AMQPProperties.persistentDeliveryMode, correlationID: correlationID, messageID: id,
            timestamp: time.map { UInt64(max(0, $0.timeIntervalSince1970)) }, type: type, appID: source)
        return AMQPMessage(routingKey: type, properties: properties, body: body ?? jsonBytes())
    }

    /// Throws for an event the AMQP mapping cannot carry: `id` (message_id), `type`
    /// (routing key and type) and `source` (app_id) are AMQP short strings, at most 255
    /// bytes. Checked before publishing or storing it, so it is refused with its field
    /// named instead of failing later on the wire.
    public func validateForAMQP() throws(EventError) {
        func check(_ field: String, _ value: String) throws(EventError) {
            guard value.utf8.count > 255 else { return }
            throw EventError(.invalidAttribute, field: field, "is \(value.utf8.count) bytes; AMQP carries at most 255 (message_id, routing key, app_id)")
        }
        try check("id", id)
        try check("type", type)
        try check("source", source)
    }

    /// The event a delivery carries. The body is authoritative; AMQP properties are only
    /// a copy for routing and tooling. A well-formed `traceparent` header is kept, with its
    /// `tracestate`.
    public init(delivery: AMQPDelivery) throws(EventError) {
        try self.init(jsonBytes: delivery.body)
        if case .string(let traceparent)? = delivery.properties.headers?["traceparent"] {
            var state: String?
            if case .string(let text)? = delivery.properties.headers?["tracestate"] { state = text }
            traceContext = TraceContext(traceparent: traceparent, tracestate: state)
        }
    }
}
