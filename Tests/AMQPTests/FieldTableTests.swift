@testable import AMQP
import Testing

@Suite struct FieldTableTests {
    /// Encoding to rabbitmq-c's C structures and decoding back loses nothing.
    @Test func everyFieldTypeSurvivesTheCRoundTrip() {
        let table: AMQPTable = [
            "bool": true, "i8": .int8(-8), "u8": .uint8(8), "i16": .int16(-16), "u16": .uint16(16),
            "i32": .int32(-32), "u32": .uint32(32), "i64": .int64(-64), "u64": .uint64(64),
            "f32": .float(1.5), "f64": .double(2.25), "decimal": .decimal(scale: 2, value: 12345),
            "string": "unicode ✓ 日本", "bytes": .bytes([0, 1, 255]), "timestamp": .timestamp(1_700_000_000),
            "array": .array([1, "x", .array([])]), "table": .table(["inner": .table(["deep": false])]), "void": .void,
            "empty": "",
        ]
        let arena = CArena()
        #expect(AMQPTable(amqp: arena.table(table)) == table)
    }

    @Test func propertiesSurviveTheCRoundTrip() {
        let properties = AMQPProperties(
            contentType: "application/json", contentEncoding: "gzip", headers: ["a": 1], deliveryMode: 2, priority: 3,
            correlationID: "c", replyTo: "r", expiration: "60000", messageID: "m", timestamp: 42, type: "t", userID: "guest",
            appID: "app", clusterID: "cl")
        let arena = CArena()
        #expect(AMQPProperties(amqp: arena.properties(properties)) == properties)
        #expect(AMQPProperties(amqp: arena.properties(AMQPProperties())) == AMQPProperties())
    }

    @Test func integersAreReadWhateverWidthTheSenderChose() {
        #expect(AMQPFieldValue.int8(3).intValue == 3)
        #expect(AMQPFieldValue.uint32(3).intValue == 3)
        #expect(AMQPFieldValue.string("3").intValue == nil)
        #expect(AMQPFieldValue.bytes(Array("x".utf8)).stringValue == "x")
    }
}
