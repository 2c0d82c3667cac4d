@testable import AMQP
import CRabbitMQ
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

extension FieldTableTests {
    /// A long string that is not UTF-8 keeps its bytes through decode and encode (so a
    /// copy of the message sends what the sender sent); valid ones stay `.string`.
    @Test func longStringsThatAreNotUTF8KeepTheirBytes() throws {
        let table: AMQPTable = ["bad": .invalidUTF8String([0x66, 0xFF, 0x6F]), "good": "café", "nested": .array([.invalidUTF8String([0xC3])])]
        let bytes = try #require(try FieldTableCodec.encode(table))
        let decoded = try #require(FieldTableCodec.decode(bytes))
        #expect(decoded.table == table)
        #expect(decoded.table["bad"]?.stringValue == nil, "not text")
        #expect(try FieldTableCodec.encode(decoded.table) == bytes)
    }
}

/// Headers are the sender's: a table nested 20,000 levels deep must not recurse 20,000
/// times on the I/O thread (or anywhere after it).
@Suite struct FieldDepthTests {
    /// A C array-in-array-in-… of `levels` levels, built without recursion.
    final class DeepValue {
        let levels: [UnsafeMutablePointer<amqp_field_value_t>]
        init(levels count: Int, kind: Character) {
            levels = (0..<count).map { _ in UnsafeMutablePointer<amqp_field_value_t>.allocate(capacity: 1) }
            let key = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: count)
            tableEntries = key
            for index in 0..<count {
                var field = amqp_field_value_t()
                if index == count - 1 {
                    field.kind = Character("l").asciiValue!
                    field.value.i64 = 7
                } else if kind == "A" {
                    field.kind = Character("A").asciiValue!
                    field.value.array = amqp_array_t(num_entries: 1, entries: levels[index + 1])
                } else {
                    key[index] = amqp_table_entry_t(key: amqp_bytes_t(len: 0, bytes: nil), value: amqp_field_value_t())
                    field.kind = Character("F").asciiValue!
                    field.value.table = amqp_table_t(num_entries: 1, entries: key + index)
                }
                levels[index].initialize(to: field)
            }
            if kind == "F" {
                for index in 0..<(count - 1) { key[index].value = levels[index + 1].pointee }
            }
        }
        let tableEntries: UnsafeMutablePointer<amqp_table_entry_t>
        deinit {
            for level in levels { level.deallocate() }
            tableEntries.deallocate()
        }
    }

    @Test(arguments: ["A", "F"] as [Character])
    func deeplyNestedHeadersAreCutAtTheDepthLimitAndFlagged(_ kind: Character) {
        let deep = DeepValue(levels: 20_000, kind: kind)
        var report = DecodeReport()
        let value = AMQPFieldValue(amqp: deep.levels[0].pointee, report: &report)
        #expect(report.tooDeep)
        var depth = 0
        var current = value
        while true {
            switch current {
            case .array(let items): current = items[0]
            case .table(let table): current = table[""]!
            default:
                #expect(current == .void)
                #expect(depth == maxFieldDepth)
                return
            }
            depth += 1
        }
    }

    @Test func headersWithinTheLimitAreDecodedWhole() {
        let deep = DeepValue(levels: maxFieldDepth + 1, kind: "A")
        var report = DecodeReport()
        _ = AMQPFieldValue(amqp: deep.levels[0].pointee, report: &report)
        #expect(!report.tooDeep)
    }

    /// A publish accepts what Warren would read back whole, and refuses deeper headers
    /// before anything recurses over them (its own size check, rabbitmq-c's encoder).
    @Test(arguments: ["A", "F"] as [Character])
    func publishesRefuseHeadersDeeperThanTheLimit(_ kind: Character) throws {
        func nested(_ levels: Int) -> AMQPFieldValue {
            var value = AMQPFieldValue.int64(1)
            for _ in 0..<levels { value = kind == "A" ? .array([value]) : .table(["k": value]) }
            return value
        }
        try WireLimits.checkPublish(exchange: "events", routingKey: "k", properties: AMQPProperties(headers: ["deep": nested(maxFieldDepth)]))
        #expect(throws: AMQPError(.invalidMessage, "the headers nest tables or arrays more than 32 levels deep")) {
            try WireLimits.checkPublish(exchange: "events", routingKey: "k", properties: AMQPProperties(headers: ["deep": nested(maxFieldDepth + 1)]))
        }
    }
}
