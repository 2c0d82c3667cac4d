import CRabbitMQ
import Foundation
import Locking

/// Publishes with rabbitmq-c directly, as any upstream service can: what Warren's own
/// publisher cannot send (headers nested past its limit, strings that are not UTF-8)
/// still reaches the broker this way, and Warren's consumers must survive reading it.
enum RawPublisher {
    /// Publishes one message whose header `deep` is an array in an array … `levels` deep
    /// (5 bytes a level on the wire). rabbitmq-c encodes it recursively, so this runs on a
    /// thread with a stack far larger than that takes.
    static func publishNestedHeader(
        levels: Int, url: String, exchange: String, routingKey: String, body: [UInt8], messageID: String
    ) throws {
        try publish(levels: levels, url: url, exchange: exchange, routingKey: routingKey, body: body, messageID: Array(messageID.utf8))
    }

    /// `messageID` as raw bytes (it may be anything, valid UTF-8 or not); with `levels`
    /// 0, the header `deep` is a plain integer.
    static func publish(
        levels: Int = 0, url: String, exchange: String, routingKey: String, body: [UInt8], messageID: [UInt8]
    ) throws {
        let result = Mutex<String?>("not run")
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            result.withLock { $0 = send(levels: levels, url: url, exchange: exchange, routingKey: routingKey, body: body, messageID: messageID) }
            done.signal()
        }
        thread.stackSize = 256 << 20
        thread.start()
        done.wait()
        if let failure = result.withLock({ $0 }) { throw TestFailure("raw publish: \(failure)") }
    }

    /// Nil on success, else what failed.
    private static func send(levels: Int, url: String, exchange: String, routingKey: String, body: [UInt8], messageID: [UInt8]) -> String? {
        guard let connection = amqp_new_connection() else { return "amqp_new_connection" }
        defer { amqp_destroy_connection(connection) }
        var info = amqp_connection_info()
        guard let text = strdup(url) else { return "strdup" }
        defer { free(text) }
        guard amqp_parse_url(text, &info) == AMQP_STATUS_OK.rawValue else { return "cannot parse \(url)" }
        guard let socket = amqp_tcp_socket_new(connection), amqp_socket_open(socket, info.host, info.port) == AMQP_STATUS_OK.rawValue else {
            return "cannot connect"
        }
        var noProperties = amqp_table_t(num_entries: 0, entries: nil)
        guard warren_amqp_login_plain(connection, info.vhost, 0, 131_072, 0, &noProperties, info.user, info.password).reply_type == AMQP_RESPONSE_NORMAL else {
            return "login refused"
        }
        amqp_channel_open(connection, 1)
        guard amqp_get_rpc_reply(connection).reply_type == AMQP_RESPONSE_NORMAL else { return "channel.open refused" }

        // The chain is built bottom-up in one allocation, without recursion.
        let chain = UnsafeMutablePointer<amqp_field_value_t>.allocate(capacity: levels + 1)
        defer { chain.deallocate() }
        var leaf = amqp_field_value_t()
        leaf.kind = UInt8(ascii: "l")
        leaf.value.i64 = 7
        chain[levels] = leaf
        for level in stride(from: levels - 1, through: 0, by: -1) {
            var array = amqp_field_value_t()
            array.kind = UInt8(ascii: "A")
            array.value.array = amqp_array_t(num_entries: 1, entries: chain + level + 1)
            chain[level] = array
        }
        let key = strdup("deep")!
        defer { free(key) }
        var id = messageID
        var entry = amqp_table_entry_t(key: amqp_cstring_bytes(key), value: chain[0])
        var properties = amqp_basic_properties_t()
        properties._flags = amqp_flags_t(AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG)
        properties.delivery_mode = 2
        return id.withUnsafeMutableBytes { id in
            properties.message_id = amqp_bytes_t(len: id.count, bytes: id.baseAddress)
            return withUnsafeMutablePointer(to: &entry) { entry in
            properties.headers = amqp_table_t(num_entries: 1, entries: entry)
            var body = body
            let status = body.withUnsafeMutableBytes { raw in
                exchange.withCString { exchange in
                    routingKey.withCString { routingKey in
                        amqp_basic_publish(
                            connection, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes(routingKey), 0, 0, &properties,
                            amqp_bytes_t(len: raw.count, bytes: raw.baseAddress))
                    }
                }
            }
            guard status == AMQP_STATUS_OK.rawValue else { return "basic.publish: \(String(cString: amqp_error_string2(status)))" }
            _ = amqp_channel_close(connection, 1, AMQP_REPLY_SUCCESS)
            let closed = amqp_connection_close(connection, AMQP_REPLY_SUCCESS)
            return closed.reply_type == AMQP_RESPONSE_NORMAL ? nil : "connection.close failed (the broker refused the message?)"
            }
        }
    }
}
