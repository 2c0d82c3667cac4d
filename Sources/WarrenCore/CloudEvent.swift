import AMQP
import Foundation

/// A domain event as Warren carries it: CloudEvents 1.0 in structured JSON mode
/// (`application/cloudevents+json`).
public struct CloudEvent: Sendable, Hashable {
    public static let contentType = "application/cloudevents+json"
    public static let specVersion = "1.0"

    public var id: String
    /// URI-reference of the producer, e.g. `/services/accounts`.
    public var source: String
    /// The event type, also the routing key, e.g. `user.created`.
    public var type: String
    public var time: Date?
    public var subject: String?
    public var dataContentType: String?
    public var data: JSONValue?

    public init(
        type: String, source: String, data: JSONValue?, id: String = UUID().uuidString.lowercased(),
        time: Date? = Date(), subject: String? = nil, dataContentType: String? = "application/json"
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.subject = subject
        self.dataContentType = dataContentType
        self.data = data
    }
}

// MARK: JSON (structured mode)

extension CloudEvent {
    /// The event as one JSON object, keys sorted, time in RFC 3339 with milliseconds.
    public func jsonBytes() -> [UInt8] {
        var object: [String: JSONValue] = [
            "specversion": .string(Self.specVersion), "id": .string(id), "source": .string(source), "type": .string(type),
        ]
        if let time { object["time"] = .string(RFC3339.format(time)) }
        if let subject { object["subject"] = .string(subject) }
        if let dataContentType { object["datacontenttype"] = .string(dataContentType) }
        if let data { object["data"] = data }
        return JSONValue.object(object).serialized()
    }

    /// Parses a structured-mode event, checking the CloudEvents required attributes.
    public init(jsonBytes: [UInt8]) throws(EventError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: jsonBytes)
        } catch {
            throw EventError(.malformed, "not valid JSON (\(error))")
        }
        guard case .object(let object) = value else { throw EventError(.malformed, "a CloudEvent must be a JSON object") }
        func required(_ key: String) throws(EventError) -> String {
            guard let text = object[key]?.stringValue, !text.isEmpty else {
                throw EventError(.invalidAttribute, field: key, "required string attribute is missing or empty")
            }
            return text
        }
        func optional(_ key: String) throws(EventError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw EventError(.invalidAttribute, field: key, "must be a string") }
            return text
        }
        let version = try required("specversion")
        guard version == Self.specVersion else {
            throw EventError(.invalidAttribute, field: "specversion", "must be \"1.0\", got \"\(version)\"")
        }
        id = try required("id")
        source = try required("source")
        type = try required("type")
        subject = try optional("subject")
        dataContentType = try optional("datacontenttype")
        if let text = try optional("time") {
            guard let date = RFC3339.parse(text) else { throw EventError(.invalidAttribute, field: "time", "must be an RFC 3339 timestamp") }
            time = date
        } else {
            time = nil
        }
        data = object["data"]
    }
}

// MARK: AMQP mapping

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

/// RFC 3339 timestamps: written in UTC with milliseconds, read with or without fractions
/// and with any offset.
public enum RFC3339 {
    public static func format(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateTimeSeparator(.standard).time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    public static func parse(_ text: String) -> Date? {
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        let whole = Date.ISO8601FormatStyle()
        return (try? fractional.parse(text)) ?? (try? whole.parse(text))
    }
}
