import CRabbitMQ

/// A frame from the broker as a Swift value. The only place that reads rabbitmq-c's frame
/// and method structs; the state machine sees only these.
enum InboundFrame {
    case deliver(channel: UInt16, tag: UInt64, redelivered: Bool, exchange: String, routingKey: String, consumerTag: String)
    case returned(channel: UInt16, AMQPReturnedMessage)
    /// A publisher confirm: `basic.ack`, or `basic.nack` when `nacked`.
    case confirm(channel: UInt16, tag: UInt64, multiple: Bool, nacked: Bool)
    case consumerCancelled(channel: UInt16, consumerTag: String)
    case channelClose(channel: UInt16, replyCode: Int, replyText: String)
    case connectionClose(replyCode: Int, replyText: String)
    case blocked(reason: String)
    case unblocked
    case flow(channel: UInt16, active: Bool)
    case header(channel: UInt16, AMQPProperties, bodySize: Int, report: DecodeReport = DecodeReport())
    /// Points into rabbitmq-c's buffers: valid until the driver releases the channel's
    /// buffers after handling the frame, never kept.
    case body(channel: UInt16, UnsafeRawBufferPointer)
    case ignored(channel: UInt16, method: amqp_method_number_t?)

    init(_ frame: amqp_frame_t) {
        let channel = frame.channel
        switch frame.frame_type {
        case FrameType.method:
            self = Self.method(frame.payload.method, channel: channel)
        case FrameType.header:
            guard let decoded = frame.payload.properties.decoded else {
                self = .ignored(channel: channel, method: nil)
                return
            }
            var report = DecodeReport()
            let properties = AMQPProperties(amqp: decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee, report: &report)
            // The size is the sender's word (a 64-bit field): never trusted for arithmetic.
            self = .header(
                channel: channel, properties, bodySize: Int(exactly: frame.payload.properties.body_size) ?? Int.max, report: report)
        case FrameType.body:
            let fragment = frame.payload.body_fragment
            self = .body(channel: channel, UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.len))
        default:
            self = .ignored(channel: channel, method: nil)
        }
    }

    private static func method(_ method: amqp_method_t, channel: UInt16) -> InboundFrame {
        func decoded<T>(_ type: T.Type) -> T { method.decoded.assumingMemoryBound(to: T.self).pointee }
        switch method.id {
        case Method.basicDeliver:
            let deliver = decoded(amqp_basic_deliver_t.self)
            return .deliver(
                channel: channel, tag: deliver.delivery_tag, redelivered: deliver.redelivered != 0, exchange: String(amqp: deliver.exchange),
                routingKey: String(amqp: deliver.routing_key), consumerTag: String(amqp: deliver.consumer_tag))
        case Method.basicReturn:
            let returned = decoded(amqp_basic_return_t.self)
            return .returned(channel: channel, AMQPReturnedMessage(
                replyCode: Int(returned.reply_code), replyText: String(amqp: returned.reply_text),
                exchange: String(amqp: returned.exchange), routingKey: String(amqp: returned.routing_key)))
        case Method.basicAck:
            let ack = decoded(amqp_basic_ack_t.self)
            return .confirm(channel: channel, tag: ack.delivery_tag, multiple: ack.multiple != 0, nacked: false)
        case Method.basicNack:
            let nack = decoded(amqp_basic_nack_t.self)
            return .confirm(channel: channel, tag: nack.delivery_tag, multiple: nack.multiple != 0, nacked: true)
        case Method.basicCancel:
            return .consumerCancelled(channel: channel, consumerTag: String(amqp: decoded(amqp_basic_cancel_t.self).consumer_tag))
        case Method.channelClose:
            let close = decoded(amqp_channel_close_t.self)
            return .channelClose(channel: channel, replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text))
        case Method.connectionClose:
            let close = decoded(amqp_connection_close_t.self)
            return .connectionClose(replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text))
        case Method.connectionBlocked:
            return .blocked(reason: String(amqp: decoded(amqp_connection_blocked_t.self).reason))
        case Method.connectionUnblocked:
            return .unblocked
        case Method.channelFlow:
            return .flow(channel: channel, active: decoded(amqp_channel_flow_t.self).active != 0)
        default:
            return .ignored(channel: channel, method: method.id)
        }
    }
}
