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
    /// `source`; persistent; the structured JSON as body.
    public func amqpMessage(correlationID: String? = nil, traceparent: String? = nil, headers: AMQPTable = [:]) -> AMQPMessage {
        var headers = headers
        if let traceparent { headers["traceparent"] = .string(traceparent) }
        let properties = AMQPProperties(
            contentType: Self.contentType, headers: headers.isEmpty ? nil : headers,
            deliveryMode: AMQPProperties.persistentDeliveryMode, correlationID: correlationID, messageID: id,
            timestamp: time.map { UInt64(max(0, $0.timeIntervalSince1970)) }, type: type, appID: source)
        return AMQPMessage(routingKey: type, properties: properties, body: jsonBytes())
    }

    /// The event a delivery carries. The body is authoritative; AMQP properties are only
    /// a copy for routing and tooling.
    public init(delivery: AMQPDelivery) throws(EventError) {
        try self.init(jsonBytes: delivery.body)
    }
}
