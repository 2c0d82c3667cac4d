import CRabbitMQ
import Glibc

/// One rabbitmq-c connection. rabbitmq-c is not thread-safe, so a session is created,
/// used and destroyed by its `IOLoop`'s thread alone; nothing else ever touches it.
final class RabbitSession {
    let state: amqp_connection_state_t
    let endpoint: AMQPEndpoint
    private let arena = CArena()
    /// Plain TCP only (nil on TLS): publishes and acks encoded for one write. Whatever
    /// sends through rabbitmq-c writes these first (`flush`), so the broker sees every
    /// frame in the order the I/O thread produced it.
    private let outbound: OutboundFrames?

    init(endpoint: AMQPEndpoint, configuration: AMQPConfiguration) throws(AMQPError) {
        guard let state = amqp_new_connection() else { fatalError("out of memory") }
        self.state = state
        self.endpoint = endpoint
        outbound = endpoint.tls == nil ? OutboundFrames() : nil
        let socket: OpaquePointer?
        if let tls = endpoint.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(.tls, "cannot create a TLS socket") }
            var ca = tls.caFile
            if ca == nil && tls.verifyPeer {
                guard let system = AMQPEndpoint.TLS.systemCAFile(environment: ["SSL_CERT_FILE": getenv("SSL_CERT_FILE").map { String(cString: $0) } ?? ""]) else {
                    throw AMQPError(.tls, "cannot verify the broker: amqps:// without cacertfile= needs the system CA bundle (install ca-certificates, or set SSL_CERT_FILE); none was found")
                }
                ca = system
            }
            if let ca {
                let status = amqp_ssl_socket_set_cacert(socket, ca)
                if status != 0 { throw AMQPError.library(status, "loading CA file \(ca)") }
            }
            if let cert = tls.certFile, let key = tls.keyFile {
                let status = amqp_ssl_socket_set_key(socket, cert, key)
                if status != 0 { throw AMQPError.library(status, "loading client certificate \(cert)") }
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyPeer && tls.verifyHostname ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(state)
        }
        guard let socket else { throw AMQPError(.connectionFailed, "cannot create a socket") }

        var connectTimeout = timeval(endpoint.connectTimeout)
        let where_ = endpoint.redactedDescription
        let status = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &connectTimeout)
        if status != 0 {
            var error = AMQPError.library(status, "connecting to \(where_)")
            if error.code != .tls { error.code = .connectionFailed }
            throw error
        }
        // rabbitmq-c 0.11 writes publishes and acks with no deadline: once the socket
        // buffer is full it waits for writability forever, and the whole I/O thread with
        // it (no heartbeat, no delivery, no timeout fires). The kernel can bound that:
        // data left unacknowledged, or a peer that stops reading (zero-window probes),
        // for longer than the heartbeat deadline aborts the connection, the write fails,
        // and the I/O thread reconnects as after any lost connection.
        var writeDeadline = UInt32(Self.writeDeadline(heartbeat: configuration.heartbeat).components.seconds * 1000)
        _ = setsockopt(
            amqp_socket_get_sockfd(socket), Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &writeDeadline, socklen_t(MemoryLayout<UInt32>.size))
        var handshake = timeval(endpoint.connectTimeout)
        amqp_set_handshake_timeout(state, &handshake)
        var rpc = timeval(configuration.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpc)

        var properties = arena.table([
            "connection_name": .string(configuration.connectionName),
            "product": "Warren",
            "platform": "Swift",
            // rabbitmq-c 0.11 advertises only authentication_failure_close by default;
            // without connection.blocked a resource alarm silently stalls publishes.
            "capabilities": .table([
                "publisher_confirms": true,
                "consumer_cancel_notify": true,
                "connection.blocked": true,
                "authentication_failure_close": true,
                "basic.nack": true,
                "exchange_exchange_bindings": true,
                "per_consumer_qos": true,
            ]),
        ])
        defer { arena.reset() }
        let reply = warren_amqp_login_plain(
            state, endpoint.vhost, 0, Int32(WireLimits.frameMax), Int32(configuration.heartbeat), &properties,
            endpoint.user, endpoint.password)
        do {
            try check(reply, channel: 0, "logging in to \(where_) as \(endpoint.user)")
        } catch {
            var error = error
            if error.code == .connectionClosed, error.replyCode == 403 || error.replyCode == 530 {
                error.code = error.replyCode == 403 ? .authenticationFailed : .connectionFailed
            } else if error.code != .tls {
                error.code = .connectionFailed
            }
            throw error
        }
    }

    deinit {
        amqp_destroy_connection(state)
    }

    /// How long a write may make no progress before the connection counts as lost: two
    /// heartbeat intervals, as the broker itself judges a silent peer (60 s without
    /// heartbeats).
    static func writeDeadline(heartbeat: Int) -> Duration {
        .seconds(heartbeat > 0 ? 2 * heartbeat : 60)
    }

    var fileDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether publishes and acks wait in `outbound` for `flush` (plain TCP), rather than
    /// going out frame by frame through rabbitmq-c (TLS), which is worth corking.
    var writesInBatches: Bool { outbound != nil }

    /// Writes the buffered publishes and acks. Called by the I/O thread once a batch of
    /// commands is done, and here before anything else is sent.
    func flush() throws(AMQPError) {
        guard let outbound, !outbound.isEmpty else { return }
        try outbound.write(to: fileDescriptor)
    }

    /// Input that rabbitmq-c already holds, which `poll` on the socket would not show.
    var hasBufferedInput: Bool { amqp_data_in_buffer(state) != 0 || amqp_frames_enqueued(state) != 0 }

    /// A clean AMQP close; errors are irrelevant because the session is discarded anyway.
    func close() {
        try? flush()
        _ = amqp_connection_close(state, 200)
    }

    // MARK: Frames

    /// The next frame if one can be had without waiting. Also sends a heartbeat when one
    /// is due and fails with `connectionLost` when the broker's heartbeats stopped.
    func nextFrame() throws(AMQPError) -> amqp_frame_t? {
        try flush()  // rabbitmq-c may send a heartbeat
        var frame = amqp_frame_t()
        var now = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &now)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        if status != AMQP_STATUS_OK.rawValue { throw AMQPError.library(status, "reading from the broker") }
        return frame
    }

    /// Frees what rabbitmq-c decoded for a channel once its frames were copied out.
    func releaseBuffers(channel: UInt16) {
        amqp_maybe_release_buffers_on_channel(state, channel)
    }

    func send(method: amqp_method_number_t, channel: UInt16, _ body: UnsafeMutableRawPointer) throws(AMQPError) {
        try flush()
        let status = amqp_send_method(state, channel, method, body)
        if status != 0 { throw AMQPError.library(status, "sending a method") }
    }

    // MARK: Synchronous broker methods

    /// Turns an RPC reply into success or an `AMQPError`. When the broker answered by
    /// closing the channel or connection, acknowledges the close as the protocol requires.
    func check(_ reply: amqp_rpc_reply_t, channel: UInt16, _ context: String) throws(AMQPError) {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw AMQPError.library(reply.library_error, context)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.channelClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                var ok = amqp_channel_close_ok_t()
                _ = amqp_send_method(state, channel, Method.channelCloseOK, &ok)
                throw AMQPError(.channelClosed, context, replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text))
            }
            if reply.reply.id == Method.connectionClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                var ok = amqp_connection_close_ok_t()
                _ = amqp_send_method(state, 0, Method.connectionCloseOK, &ok)
                throw AMQPError(.connectionClosed, context, replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text))
            }
            throw AMQPError(.library, "\(context): unexpected reply method \(reply.reply.id)")
        default:
            throw AMQPError(.library, "\(context): no reply")
        }
    }

    private func lastReply(_ channel: UInt16, _ context: String) throws(AMQPError) {
        defer { releaseBuffers(channel: channel) }
        try check(amqp_get_rpc_reply(state), channel: channel, context)
    }

    func openChannel(_ channel: UInt16, confirms: Bool, prefetch: UInt16?) throws(AMQPError) {
        try flush()
        amqp_channel_open(state, channel)
        try lastReply(channel, "channel.open \(channel)")
        if confirms {
            amqp_confirm_select(state, channel)
            try lastReply(channel, "confirm.select on channel \(channel)")
        }
        if let prefetch { try qos(channel, prefetch: prefetch) }
    }

    func closeChannel(_ channel: UInt16) throws(AMQPError) {
        try flush()
        let reply = amqp_channel_close(state, channel, 200)
        defer { releaseBuffers(channel: channel) }
        try check(reply, channel: channel, "channel.close \(channel)")
    }

    func qos(_ channel: UInt16, prefetch: UInt16) throws(AMQPError) {
        amqp_basic_qos(state, channel, 0, prefetch, 0)
        try lastReply(channel, "basic.qos \(prefetch)")
    }

    func declareExchange(_ channel: UInt16, _ name: String, type: String, durable: Bool, autoDelete: Bool, isInternal: Bool, arguments: AMQPTable) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_declare(state, channel, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0, autoDelete ? 1 : 0, isInternal ? 1 : 0, arena.table(arguments))
        try lastReply(channel, "exchange.declare \(name)")
    }

    func deleteExchange(_ channel: UInt16, _ name: String, ifUnused: Bool) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_delete(state, channel, arena.bytes(name), ifUnused ? 1 : 0)
        try lastReply(channel, "exchange.delete \(name)")
    }

    func declareQueue(_ channel: UInt16, _ name: String, passive: Bool, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: AMQPTable) throws(AMQPError) -> AMQPQueueInfo {
        defer { arena.reset() }
        let ok = amqp_queue_declare(state, channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0, arena.table(arguments))
        let info = ok.map { AMQPQueueInfo(name: String(amqp: $0.pointee.queue), messageCount: $0.pointee.message_count, consumerCount: $0.pointee.consumer_count) }
        try lastReply(channel, "queue.declare \(name)")
        return info!
    }

    func deleteQueue(_ channel: UInt16, _ name: String, ifUnused: Bool, ifEmpty: Bool) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_delete(state, channel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        let count = ok?.pointee.message_count ?? 0
        try lastReply(channel, "queue.delete \(name)")
        return count
    }

    func purgeQueue(_ channel: UInt16, _ name: String) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_purge(state, channel, arena.bytes(name))
        let count = ok?.pointee.message_count ?? 0
        try lastReply(channel, "queue.purge \(name)")
        return count
    }

    func bindQueue(_ channel: UInt16, queue: String, exchange: String, routingKey: String, arguments: AMQPTable) throws(AMQPError) {
        defer { arena.reset() }
        amqp_queue_bind(state, channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), arena.table(arguments))
        try lastReply(channel, "queue.bind \(queue) to \(exchange) with '\(routingKey)'")
    }

    func unbindQueue(_ channel: UInt16, queue: String, exchange: String, routingKey: String, arguments: AMQPTable) throws(AMQPError) {
        defer { arena.reset() }
        amqp_queue_unbind(state, channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), arena.table(arguments))
        try lastReply(channel, "queue.unbind \(queue) from \(exchange) with '\(routingKey)'")
    }

    func consume(_ channel: UInt16, queue: String, tag: String, exclusive: Bool, arguments: AMQPTable) throws(AMQPError) {
        try flush()
        defer { arena.reset() }
        amqp_basic_consume(state, channel, arena.bytes(queue), arena.bytes(tag), 0, 0, exclusive ? 1 : 0, arena.table(arguments))
        try lastReply(channel, "basic.consume on \(queue)")
    }

    func cancel(_ channel: UInt16, tag: String) throws(AMQPError) {
        defer { arena.reset() }
        amqp_basic_cancel(state, channel, arena.bytes(tag))
        try lastReply(channel, "basic.cancel \(tag)")
    }

    /// `basic.get`: the message's content frames follow get-ok at once on the channel.
    func get(_ channel: UInt16, queue: String, generation: UInt64) throws(AMQPError) -> AMQPDelivery? {
        defer { arena.reset() }
        let reply = amqp_basic_get(state, channel, arena.bytes(queue), 0)
        try check(reply, channel: channel, "basic.get \(queue)")
        guard reply.reply.id == Method.basicGetOK, let decoded = reply.reply.decoded else {
            releaseBuffers(channel: channel)
            return nil
        }
        let ok = decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        var delivery = AMQPDelivery(
            body: [], properties: AMQPProperties(), deliveryTag: ok.delivery_tag, redelivered: ok.redelivered != 0,
            exchange: String(amqp: ok.exchange), routingKey: String(amqp: ok.routing_key), consumerTag: nil,
            messageCount: ok.message_count, channelID: channel, generation: generation)
        var message = amqp_message_t()
        try check(amqp_read_message(state, channel, &message, 0), channel: channel, "reading the message of basic.get \(queue)")
        var report = DecodeReport()
        delivery.properties = AMQPProperties(amqp: message.properties, report: &report)
        (delivery.headersTooDeep, delivery.stringsNotUTF8) = (report.tooDeep, report.notUTF8)
        delivery.body = [UInt8](amqp: message.body)
        amqp_destroy_message(&message)
        releaseBuffers(channel: channel)
        return delivery
    }

    // MARK: Asynchronous methods (no reply)

    /// Encoded into `outbound` on plain TCP (bodies up to one frame; larger ones are
    /// rare and go through rabbitmq-c, which copies one frame at a time), else sent now.
    /// Throws `invalidMessage` with nothing sent when the message cannot be encoded.
    func publish(_ channel: UInt16, exchange: String, routingKey: String, mandatory: Bool, properties: AMQPProperties, body: [UInt8]) throws(AMQPError) {
        defer { arena.reset() }
        var method = amqp_basic_publish_t(
            ticket: 0, exchange: arena.bytes(exchange), routing_key: arena.bytes(routingKey), mandatory: mandatory ? 1 : 0, immediate: 0)
        var cProperties = arena.properties(properties)
        // The body is borrowed, not copied, for the call.
        let failure = body.withUnsafeBytes { raw -> AMQPError? in
            do throws(AMQPError) {
                if let outbound, raw.count <= outbound.frameMax {
                    try outbound.appendPublish(channel: channel, &method, &cProperties, body: raw)
                    try flushIfFull()
                } else {
                    try flush()
                    let status = amqp_basic_publish(
                        state, channel, method.exchange, method.routing_key, method.mandatory, 0, &cProperties, amqp_bytes_t(borrowing: raw))
                    if status != 0 { throw AMQPError.library(status, "basic.publish to \(exchange)") }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    func ack(_ channel: UInt16, tag: UInt64, multiple: Bool) throws(AMQPError) {
        var method = amqp_basic_ack_t(delivery_tag: tag, multiple: multiple ? 1 : 0)
        try sendOneWay(Method.basicAck, channel: channel, &method)
    }

    func nack(_ channel: UInt16, tag: UInt64, multiple: Bool, requeue: Bool) throws(AMQPError) {
        var method = amqp_basic_nack_t(delivery_tag: tag, multiple: multiple ? 1 : 0, requeue: requeue ? 1 : 0)
        try sendOneWay(Method.basicNack, channel: channel, &method)
    }

    func reject(_ channel: UInt16, tag: UInt64, requeue: Bool) throws(AMQPError) {
        var method = amqp_basic_reject_t(delivery_tag: tag, requeue: requeue ? 1 : 0)
        try sendOneWay(Method.basicReject, channel: channel, &method)
    }

    /// A method the broker does not answer: buffered on plain TCP, sent now on TLS.
    private func sendOneWay(_ method: amqp_method_number_t, channel: UInt16, _ decoded: UnsafeMutableRawPointer) throws(AMQPError) {
        guard let outbound else { return try send(method: method, channel: channel, decoded) }
        try outbound.appendMethod(method, channel: channel, decoded)
        try flushIfFull()
    }

    private func flushIfFull() throws(AMQPError) {
        if let outbound, outbound.count >= OutboundFrames.flushThreshold { try flush() }
    }
}

/// What `queue.declare` reports.
public struct AMQPQueueInfo: Sendable, Equatable {
    public var name: String
    public var messageCount: UInt32
    public var consumerCount: UInt32
}

extension amqp_bytes_t {
    /// Points at memory the caller keeps alive for the duration of one rabbitmq-c call.
    init(borrowing raw: UnsafeRawBufferPointer) {
        self.init(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress))
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
