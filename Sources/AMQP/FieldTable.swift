/// An AMQP field table: message headers and queue/exchange/consumer arguments.
public typealias AMQPTable = [String: AMQPFieldValue]

/// A value in an AMQP field table, as RabbitMQ understands the 0-9-1 types.
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    case decimal(scale: UInt8, value: UInt32)
    case string(String)
    /// A long string (`S`) whose bytes are not valid UTF-8, kept as they came: a copy of
    /// the message (dead-lettered, put back, replayed) sends the same bytes.
    case invalidUTF8String([UInt8])
    case bytes([UInt8])
    case array([AMQPFieldValue])
    /// Seconds since the Unix epoch.
    case timestamp(UInt64)
    case table(AMQPTable)
    case void

    /// The value as an integer, whichever integer type the sender chose (publishers in
    /// other languages pick different widths for the same header).
    public var intValue: Int64? {
        switch self {
        case .int8(let v): Int64(v)
        case .uint8(let v): Int64(v)
        case .int16(let v): Int64(v)
        case .uint16(let v): Int64(v)
        case .int32(let v): Int64(v)
        case .uint32(let v): Int64(v)
        case .int64(let v): v
        case .uint64(let v): Int64(exactly: v)
        case .timestamp(let v): Int64(exactly: v)
        default: nil
        }
    }

    /// The value as text: a long string, or bytes that are valid UTF-8 (never a string
    /// that is not).
    public var stringValue: String? {
        switch self {
        case .string(let s): s
        case .bytes(let b): String(validating: b, as: UTF8.self)
        default: nil
        }
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    /// Integer literals become signed 64-bit ('l'), which RabbitMQ accepts for every
    /// numeric argument (x-message-ttl, x-delivery-limit, …).
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
