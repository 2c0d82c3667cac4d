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
        _ = try shortString("exchange", exchange)
        _ = try shortString("routing key", routingKey)
        let size = try encodedSize(properties)
        guard size <= maxPropertiesSize else {
            throw AMQPError(.invalidMessage, "the properties and headers take \(size) bytes; one AMQP frame holds at most \(maxPropertiesSize)")
        }
    }

    /// The properties' size on the wire, as rabbitmq-c encodes them, in one pass that also
    /// refuses a short string (property or header name) AMQP cannot carry. Called on
    /// every publish: no allocation.
    static func encodedSize(_ properties: AMQPProperties) throws(AMQPError) -> Int {
        var size = try shortString("content_type", properties.contentType)
        size += try shortString("content_encoding", properties.contentEncoding)
        size += try shortString("correlation_id", properties.correlationID)
        size += try shortString("reply_to", properties.replyTo)
        size += try shortString("expiration", properties.expiration)
        size += try shortString("message_id", properties.messageID)
        size += try shortString("type", properties.type)
        size += try shortString("user_id", properties.userID)
        size += try shortString("app_id", properties.appID)
        size += try shortString("cluster_id", properties.clusterID)
        if properties.deliveryMode != nil { size += 1 }
        if properties.priority != nil { size += 1 }
        if properties.timestamp != nil { size += 8 }
        if let headers = properties.headers { size += try encodedSize(headers, depth: 0) }
        return size
    }

    /// A short string's size on the wire (length byte + bytes), 0 when absent.
    private static func shortString(_ name: String, _ value: String?) throws(AMQPError) -> Int {
        guard let length = value?.utf8.count else { return 0 }
        guard length <= shortString else {
            throw AMQPError(.invalidMessage, "\(name) is \(length) bytes; AMQP allows at most \(shortString)")
        }
        return 1 + length
    }

    /// Field names are short strings too, in nested tables and in tables inside arrays.
    /// Nesting is refused past `maxFieldDepth` (what Warren reads back too), before the
    /// recursion here or in rabbitmq-c's encoder can run deep on a thread's stack.
    private static func encodedSize(_ table: AMQPTable, depth: Int) throws(AMQPError) -> Int {
        var size = 4
        for (key, value) in table {
            let name = key.utf8.count
            guard name <= shortString else {
                throw AMQPError(.invalidMessage, "a header name is \(name) bytes; AMQP allows at most \(shortString)")
            }
            size += 1 + name + (try encodedSize(value, depth: depth))
        }
        return size
    }

    /// A field value's size: its type byte and its payload.
    private static func encodedSize(_ value: AMQPFieldValue, depth: Int) throws(AMQPError) -> Int {
        switch value {
        case .bool, .int8, .uint8: return 2
        case .int16, .uint16: return 3
        case .int32, .uint32, .float: return 5
        case .int64, .uint64, .double, .timestamp: return 9
        case .decimal: return 6
        case .string(let text): return 5 + text.utf8.count
        case .bytes(let bytes), .invalidUTF8String(let bytes): return 5 + bytes.count
        case .array(let items):
            try nest(depth)
            var size = 5
            for item in items { size += try encodedSize(item, depth: depth + 1) }
            return size
        case .table(let table):
            try nest(depth)
            return 1 + (try encodedSize(table, depth: depth + 1))
        case .void: return 1
        }
    }

    private static func nest(_ depth: Int) throws(AMQPError) {
        guard depth < maxFieldDepth else {
            throw AMQPError(.invalidMessage, "the headers nest tables or arrays more than \(maxFieldDepth) levels deep")
        }
    }
}

extension AMQPProperties {
    /// These properties without the string properties AMQP cannot carry (over 255 bytes):
    /// for sending on a message whose sender made one too long.
    public func droppingOverlongStrings() -> AMQPProperties {
        func fits(_ value: String?) -> String? { value.flatMap { $0.utf8.count <= WireLimits.shortString ? $0 : nil } }
        var properties = self
        properties.contentType = fits(contentType)
        properties.contentEncoding = fits(contentEncoding)
        properties.correlationID = fits(correlationID)
        properties.replyTo = fits(replyTo)
        properties.expiration = fits(expiration)
        properties.messageID = fits(messageID)
        properties.type = fits(type)
        properties.userID = fits(userID)
        properties.appID = fits(appID)
        properties.clusterID = fits(clusterID)
        return properties
    }
}
