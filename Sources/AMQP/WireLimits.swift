/// What AMQP 0-9-1 can carry at all. Exchange and queue names, routing keys, the string
/// properties and header names are short strings (at most 255 bytes), and the properties
/// must fit in one content-header frame. Handing rabbitmq-c more fails the write on the
/// I/O thread after `basic.publish` went out, which costs every caller on the connection.
/// So publishes are checked before they are queued and fail alone, with the field named.
enum WireLimits {
    static let shortString = 255
    /// The frame size Warren asks for at login (RabbitMQ's default too).
    static let frameMax = 131_072
    /// A content-header frame: 7 bytes of frame header, 1 frame end, then class, weight,
    /// body size and property flags (14 bytes) before the properties; 64 bytes more are
    /// kept for the `x-warren-publish-seq` header the I/O thread adds to mandatory publishes.
    static let maxPropertiesSize = frameMax - 8 - 14 - 64

    static func checkPublish(exchange: String, routingKey: String, properties: AMQPProperties) throws(AMQPError) {
        try check("exchange", exchange)
        try check("routing key", routingKey)
        let fields: [(String, String?)] = [
            ("content_type", properties.contentType), ("content_encoding", properties.contentEncoding),
            ("correlation_id", properties.correlationID), ("reply_to", properties.replyTo),
            ("expiration", properties.expiration), ("message_id", properties.messageID), ("type", properties.type),
            ("user_id", properties.userID), ("app_id", properties.appID), ("cluster_id", properties.clusterID),
        ]
        for case let (name, value?) in fields { try check(name, value) }
        if let headers = properties.headers { try checkNames(headers, path: "header") }
        let size = encodedSize(properties)
        guard size <= maxPropertiesSize else {
            throw AMQPError(.invalidMessage, "the properties and headers take \(size) bytes; one AMQP frame holds at most \(maxPropertiesSize)")
        }
    }

    /// The properties' size on the wire, as rabbitmq-c encodes them.
    static func encodedSize(_ properties: AMQPProperties) -> Int {
        let strings = [
            properties.contentType, properties.contentEncoding, properties.correlationID, properties.replyTo, properties.expiration,
            properties.messageID, properties.type, properties.userID, properties.appID, properties.clusterID,
        ]
        var size = strings.reduce(0) { $0 + ($1.map { 1 + $0.utf8.count } ?? 0) }
        if properties.deliveryMode != nil { size += 1 }
        if properties.priority != nil { size += 1 }
        if properties.timestamp != nil { size += 8 }
        if let headers = properties.headers { size += encodedSize(headers) }
        return size
    }

    static func encodedSize(_ table: AMQPTable) -> Int {
        table.reduce(4) { $0 + 1 + $1.key.utf8.count + encodedSize($1.value) }
    }

    private static func encodedSize(_ value: AMQPFieldValue) -> Int {
        1 + {
            switch value {
            case .bool, .int8, .uint8: 1
            case .int16, .uint16: 2
            case .int32, .uint32, .float: 4
            case .int64, .uint64, .double, .timestamp: 8
            case .decimal: 5
            case .string(let text): 4 + text.utf8.count
            case .bytes(let bytes): 4 + bytes.count
            case .array(let items): items.reduce(4) { $0 + encodedSize($1) }
            case .table(let table): encodedSize(table)
            case .void: 0
            }
        }()
    }

    private static func check(_ name: String, _ value: String) throws(AMQPError) {
        let length = value.utf8.count
        guard length <= shortString else {
            throw AMQPError(.invalidMessage, "\(name) is \(length) bytes; AMQP allows at most \(shortString)")
        }
    }

    /// Field names, in nested tables and in tables inside arrays too.
    private static func checkNames(_ table: AMQPTable, path: String) throws(AMQPError) {
        for (key, value) in table {
            if key.utf8.count > shortString {
                throw AMQPError(.invalidMessage, "a \(path) name is \(key.utf8.count) bytes; AMQP allows at most \(shortString)")
            }
            try checkNames(in: value, path: path)
        }
    }

    private static func checkNames(in value: AMQPFieldValue, path: String) throws(AMQPError) {
        switch value {
        case .table(let nested): try checkNames(nested, path: path)
        case .array(let items): for item in items { try checkNames(in: item, path: path) }
        default: break
        }
    }
}
