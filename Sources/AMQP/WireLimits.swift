/// What AMQP 0-9-1 can carry at all. Exchange and queue names, routing keys, the string
/// properties and header names are short strings (at most 255 bytes); a longer one cannot
/// be encoded, and handing it to rabbitmq-c fails the write on the I/O thread, which
/// would cost every caller on the connection. So publishes are checked before they are
/// queued and fail alone, with the field named.
enum WireLimits {
    static let shortString = 255

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
    }

    private static func check(_ name: String, _ value: String) throws(AMQPError) {
        let length = value.utf8.count
        guard length <= shortString else {
            throw AMQPError(.invalidMessage, "\(name) is \(length) bytes; AMQP allows at most \(shortString)")
        }
    }

    /// Field names, in nested tables too (arrays hold values only).
    private static func checkNames(_ table: AMQPTable, path: String) throws(AMQPError) {
        for (key, value) in table {
            if key.utf8.count > shortString {
                throw AMQPError(.invalidMessage, "a \(path) name is \(key.utf8.count) bytes; AMQP allows at most \(shortString)")
            }
            if case .table(let nested) = value { try checkNames(nested, path: path) }
        }
    }
}
