import CRabbitMQ

/// AMQP's wire encoding of a field table (message headers, queue arguments) through
/// rabbitmq-c, converted the way a delivery's headers are: nested tables and arrays
/// deeper than 32 levels read as `.void` and are reported. Used by the fuzzer and tests to
/// reach the conversion from bytes; the I/O thread gets its tables from rabbitmq-c's
/// frame decoder.
public enum FieldTableCodec {
    /// Nil when rabbitmq-c refuses the bytes (not an encoded table).
    public static func decode(_ bytes: [UInt8]) -> (table: AMQPTable, tooDeep: Bool)? {
        var pool = amqp_pool_t()
        init_amqp_pool(&pool, 4096)
        defer { empty_amqp_pool(&pool) }
        var table = amqp_table_t()
        var offset = 0
        var bytes = bytes
        let status = bytes.withUnsafeMutableBytes { buffer in
            amqp_decode_table(amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress), &pool, &table, &offset)
        }
        guard status == AMQP_STATUS_OK.rawValue else { return nil }
        var report = DecodeReport()
        let decoded = AMQPTable(amqp: table, report: &report)
        return (decoded, report.tooDeep)
    }

    /// The table's bytes (keys sorted). Throws `invalidMessage` for what AMQP cannot carry
    /// (a name over 255 bytes), as a publish would; nil when rabbitmq-c fails otherwise.
    public static func encode(_ table: AMQPTable) throws(AMQPError) -> [UInt8]? {
        _ = try WireLimits.encodedSize(AMQPProperties(headers: table))
        let arena = CArena()
        var input = arena.table(table)
        var capacity = 4096
        return withExtendedLifetime(arena) { () -> [UInt8]? in
            while capacity <= 1 << 28 {
                var output = [UInt8](repeating: 0, count: capacity)
                var offset = 0
                let status = output.withUnsafeMutableBytes { buffer in
                    amqp_encode_table(amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress), &input, &offset)
                }
                if status == AMQP_STATUS_OK.rawValue { return Array(output[..<offset]) }
                guard status == AMQP_STATUS_TABLE_TOO_BIG.rawValue else { return nil }
                capacity *= 4
            }
            return nil
        }
    }
}
