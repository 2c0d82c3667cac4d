@testable import AMQP
import CRabbitMQ
import Glibc
import Testing

/// The frames the I/O thread writes itself on plain TCP, read back from a socket pair and
/// checked against the AMQP 0-9-1 wire format (section 4.2 of the spec), not against
/// rabbitmq-c's output: a frame is type, channel, payload size, payload, 0xCE.
@Suite struct OutboundFramesTests {
    private struct Frame: Equatable {
        var type: UInt8
        var channel: UInt16
        var payload: [UInt8]
    }

    /// Writes what `frames` holds into one end of a socket pair and parses the other.
    private func written(_ frames: OutboundFrames) throws -> [Frame] {
        var pair: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]); close(pair[1]) }
        let expected = frames.count
        var bytes: [UInt8] = []
        try frames.write(to: pair[0])
        #expect(frames.isEmpty)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < expected {
            let count = read(pair[1], &chunk, chunk.count)
            try #require(count > 0)
            bytes += chunk[0..<count]
        }
        var parsed: [Frame] = []
        var offset = 0
        while offset < bytes.count {
            let size = Int(bytes[offset + 3]) << 24 | Int(bytes[offset + 4]) << 16 | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6])
            try #require(offset + 7 + size < bytes.count)
            #expect(bytes[offset + 7 + size] == 0xCE, "frame end")
            parsed.append(Frame(
                type: bytes[offset], channel: UInt16(bytes[offset + 1]) << 8 | UInt16(bytes[offset + 2]),
                payload: Array(bytes[(offset + 7)..<(offset + 7 + size)])))
            offset += 8 + size
        }
        return parsed
    }

    private func publish(_ frames: OutboundFrames, channel: UInt16, exchange: String, routingKey: String, properties: AMQPProperties, body: [UInt8]) throws(AMQPError) {
        let arena = CArena()
        var method = amqp_basic_publish_t(ticket: 0, exchange: arena.bytes(exchange), routing_key: arena.bytes(routingKey), mandatory: 1, immediate: 0)
        var cProperties = arena.properties(properties)
        var failure: AMQPError?
        body.withUnsafeBytes { raw in
            do throws(AMQPError) {
                try frames.appendPublish(channel: channel, &method, &cProperties, body: raw)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    private func shortString(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }

    @Test func aPublishIsMethodHeaderAndBodyFrames() throws {
        let frames = OutboundFrames()
        var properties = AMQPProperties(deliveryMode: 2)
        properties.contentType = "application/json"
        let body = Array("{\"a\":1}".utf8)
        try publish(frames, channel: 3, exchange: "events", routingKey: "user.created", properties: properties, body: body)

        let parsed = try written(frames)
        try #require(parsed.count == 3)
        // basic.publish (class 60, method 40): ticket, exchange, routing key, bits (mandatory).
        #expect(parsed[0] == Frame(
            type: 1, channel: 3, payload: [0, 60, 0, 40, 0, 0] + shortString("events") + shortString("user.created") + [0x01]))
        // Content header: class 60, weight 0, body size (64 bits), property flags
        // (content-type bit 15, delivery-mode bit 12), then the properties in flag order.
        #expect(parsed[1] == Frame(
            type: 2, channel: 3,
            payload: [0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, UInt8(body.count), 0x90, 0x00] + shortString("application/json") + [2]))
        #expect(parsed[2] == Frame(type: 3, channel: 3, payload: body))
    }

    @Test func aBodyLargerThanAFrameIsSplitAtFrameMax() throws {
        let frames = OutboundFrames(frameMax: 4096)
        let body = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try publish(frames, channel: 1, exchange: "", routingKey: "q", properties: AMQPProperties(), body: body)

        let parsed = try written(frames)
        let bodies = parsed.filter { $0.type == 3 }
        #expect(bodies.map(\.payload.count) == [4088, 4088, 1824])  // frame_max minus 8 bytes of framing
        #expect(bodies.flatMap(\.payload) == body)
        #expect(parsed.filter { $0.type == 3 || $0.type == 2 || $0.type == 1 }.count == 5)
    }

    @Test func aPublishThatCannotBeEncodedLeavesNothingBehind() throws {
        let frames = OutboundFrames(frameMax: 512)
        try publish(frames, channel: 1, exchange: "", routingKey: "first", properties: AMQPProperties(), body: [1])
        let before = frames.count
        var properties = AMQPProperties()
        properties.headers = ["big": .string(String(repeating: "x", count: 1000))]
        #expect(throws: AMQPError.self) {
            try publish(frames, channel: 1, exchange: "", routingKey: "second", properties: properties, body: [2])
        }
        #expect(frames.count == before)  // no method frame without its header on the wire
        #expect(try written(frames).count == 3)
    }

    @Test func acksAreMethodFrames() throws {
        let frames = OutboundFrames()
        var ack = amqp_basic_ack_t(delivery_tag: 0x0102_0304_0506_0708, multiple: 1)
        try frames.appendMethod(Method.basicAck, channel: 2, &ack)
        var reject = amqp_basic_reject_t(delivery_tag: 9, requeue: 0)
        try frames.appendMethod(Method.basicReject, channel: 2, &reject)

        #expect(try written(frames) == [
            Frame(type: 1, channel: 2, payload: [0, 60, 0, 80, 1, 2, 3, 4, 5, 6, 7, 8, 0x01]),
            Frame(type: 1, channel: 2, payload: [0, 60, 0, 90, 0, 0, 0, 0, 0, 0, 0, 9, 0x00]),
        ])
    }
}
