import CRabbitMQ
import Glibc

/// The publishes and acks of one batch of commands, encoded as AMQP frames and written
/// with one `send`. rabbitmq-c 0.11's `amqp_basic_publish` makes a system call per frame
/// (three per message) and `amqp_basic_ack` one per ack; on a plain TCP connection the
/// I/O thread encodes them here instead — with rabbitmq-c's own encoders
/// (`amqp_encode_method`, `amqp_encode_properties`), only the framing is ours — and
/// `RabbitSession` writes the buffer before anything else reaches the socket, so the
/// byte stream keeps the order the commands were executed in. (On TLS the bytes must
/// go through rabbitmq-c's TLS socket, which has no public write: those sessions send
/// each frame through rabbitmq-c and are corked instead.)
///
/// Used by the I/O thread alone, like the session that owns it.
final class OutboundFrames {
    /// Above this many buffered bytes, `RabbitSession` writes them before encoding more.
    static let flushThreshold = 128 * 1024
    private static let frameHeader = 7
    private static let frameEnd: UInt8 = 0xCE

    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0
    let frameMax: Int

    init(frameMax: Int = WireLimits.frameMax) {
        self.frameMax = frameMax
        capacity = 2 * frameMax
        storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    /// `basic.publish`, its content header and its body frames, or nothing (when one of
    /// them cannot be encoded: `invalidMessage`).
    func appendPublish(
        channel: UInt16, _ method: inout amqp_basic_publish_t, _ properties: inout amqp_basic_properties_t, body: UnsafeRawBufferPointer
    ) throws(AMQPError) {
        let start = count
        do throws(AMQPError) {
            try appendMethod(Method.basicPublish, channel: channel, &method)
            try appendHeader(channel: channel, bodySize: body.count, &properties)
        } catch {
            count = start
            throw error
        }
        appendBody(channel: channel, body)
    }

    /// A method frame: the method number, then its arguments as rabbitmq-c encodes them.
    /// Throws `invalidMessage` (nothing appended) if they do not fit in one frame.
    func appendMethod(_ method: amqp_method_number_t, channel: UInt16, _ decoded: UnsafeMutableRawPointer) throws(AMQPError) {
        try appendFrame(type: FrameType.method, channel: channel, prefix: 4) { payload in
            store(method, at: payload)
            let encoded = amqp_encode_method(method, decoded, amqp_bytes_t(len: frameMax - Self.frameHeader - 1 - 4, bytes: payload + 4))
            return encoded < 0 ? nil : Int(encoded)
        }
    }

    /// A content header: class `basic`, weight 0, the body size, then the properties as
    /// rabbitmq-c encodes them (flags included).
    func appendHeader(channel: UInt16, bodySize: Int, _ properties: UnsafeMutablePointer<amqp_basic_properties_t>) throws(AMQPError) {
        try appendFrame(type: FrameType.header, channel: channel, prefix: 12) { payload in
            store(UInt16(AMQP_BASIC_CLASS), at: payload)
            store(UInt16(0), at: payload + 2)
            store(UInt64(bodySize), at: payload + 4)
            let encoded = amqp_encode_properties(
                UInt16(AMQP_BASIC_CLASS), properties, amqp_bytes_t(len: frameMax - Self.frameHeader - 1 - 12, bytes: payload + 12))
            return encoded < 0 ? nil : Int(encoded)
        }
    }

    /// The body, in as many body frames as `frameMax` requires (none when empty).
    func appendBody(channel: UInt16, _ body: UnsafeRawBufferPointer) {
        let chunk = frameMax - Self.frameHeader - 1
        var offset = 0
        while offset < body.count {
            let length = min(chunk, body.count - offset)
            reserve(Self.frameHeader + length + 1)
            let frame = storage + count
            writeHeader(at: frame, type: FrameType.body, channel: channel, size: length)
            (frame + Self.frameHeader).copyMemory(from: body.baseAddress! + offset, byteCount: length)
            frame.storeBytes(of: Self.frameEnd, toByteOffset: Self.frameHeader + length, as: UInt8.self)
            count += Self.frameHeader + length + 1
            offset += length
        }
    }

    /// Writes everything buffered to `socket` (non-blocking, as rabbitmq-c leaves it),
    /// waiting for room while the kernel's buffer is full. A peer that stops reading is
    /// bounded by the socket's `TCP_USER_TIMEOUT`, which fails the write.
    func write(to socket: Int32) throws(AMQPError) {
        var sent = 0
        defer { count = 0 }
        while sent < count {
            let result = send(socket, storage + sent, count - sent, Int32(MSG_NOSIGNAL))
            if result > 0 {
                sent += result
                continue
            }
            let error = errno
            if result < 0, error == EINTR { continue }
            if result < 0, error == EAGAIN || error == EWOULDBLOCK {
                var descriptor = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
                if poll(&descriptor, 1, -1) >= 0 || errno == EINTR { continue }
                throw Self.lost("waiting to write to the broker", errno)
            }
            throw Self.lost("writing to the broker", result < 0 ? error : EPIPE)
        }
    }

    private static func lost(_ context: String, _ error: Int32) -> AMQPError {
        AMQPError(.connectionLost, "\(context): \(String(cString: strerror(error)))")
    }

    /// Frames whose payload starts with `prefix` bytes of fixed fields and continues with
    /// what `encode` writes (its length, or nil if it did not fit).
    private func appendFrame(type: UInt8, channel: UInt16, prefix: Int, encode: (UnsafeMutableRawPointer) -> Int?) throws(AMQPError) {
        reserve(frameMax)
        let frame = storage + count
        guard let encoded = encode(frame + Self.frameHeader) else {
            throw AMQPError(.invalidMessage, "the frame does not fit in \(frameMax) bytes")
        }
        let size = prefix + encoded
        writeHeader(at: frame, type: type, channel: channel, size: size)
        frame.storeBytes(of: Self.frameEnd, toByteOffset: Self.frameHeader + size, as: UInt8.self)
        count += Self.frameHeader + size + 1
    }

    private func writeHeader(at frame: UnsafeMutableRawPointer, type: UInt8, channel: UInt16, size: Int) {
        frame.storeBytes(of: type, as: UInt8.self)
        store(channel, at: frame + 1)
        store(UInt32(size), at: frame + 3)
    }

    private func store<T: FixedWidthInteger>(_ value: T, at pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: value.bigEndian, as: T.self)
    }

    private func reserve(_ needed: Int) {
        guard count + needed > capacity else { return }
        let grown = max(2 * capacity, count + needed)
        let larger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
        larger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = larger
        capacity = grown
    }
}
