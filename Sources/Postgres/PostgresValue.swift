#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One bind parameter, ready for the wire. `nil` in a bind list is SQL NULL.
///
/// Build it from any ``PostgresEncodable`` (`PostgresValue(date)`, `.init(id)`), or from
/// a literal in a bind list: `["alice", 42, true, nil]`.
public struct PostgresValue: Sendable, Hashable {
    enum Payload: Sendable, Hashable {
        /// libpq text format: PostgreSQL parses the string with the type's input function.
        case text(String)
        /// libpq binary format; used for bytea so bytes go over verbatim, no escaping.
        case binary([UInt8])
    }

    let payload: Payload
    /// The parameter type sent to the server; `.unspecified` lets it infer from context.
    public let type: PostgresDataType

    init(_ payload: Payload, type: PostgresDataType) {
        self.payload = payload
        self.type = type
    }

    public init(_ value: some PostgresEncodable) {
        self = value.postgresValue
    }

    /// A value in PostgreSQL's text input syntax for `type`, e.g. `.text("1 day", type: .unspecified)`
    /// for an interval column.
    public static func text(_ text: String, type: PostgresDataType = .unspecified) -> PostgresValue {
        PostgresValue(.text(text), type: type)
    }

    public static func bytes(_ bytes: some Sequence<UInt8>) -> PostgresValue {
        PostgresValue(.binary(Array(bytes)), type: .bytea)
    }

    /// `value` encoded as JSON, for a `json` or `jsonb` parameter.
    public static func json(_ value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws -> PostgresValue {
        let data = try encoder.encode(value)
        return .text(String(decoding: data, as: UTF8.self), type: .jsonb)
    }
}

extension PostgresValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
    public init(booleanLiteral value: Bool) { self.init(value) }
    public init(floatLiteral value: Double) { self.init(value) }
}

/// A Swift type that can be sent as a bind parameter.
public protocol PostgresEncodable: Sendable {
    var postgresValue: PostgresValue { get }
}

extension PostgresValue: PostgresEncodable {
    public var postgresValue: PostgresValue { self }
}

extension String: PostgresEncodable {
    /// Unspecified rather than `text`, so a string can fill a `uuid`, `jsonb` or enum column.
    public var postgresValue: PostgresValue { .text(self) }
}

extension Substring: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self), type: .int8) }
}

extension Int64: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self), type: .int8) }
}

extension Int32: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self), type: .int4) }
}

extension Int16: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self), type: .int2) }
}

extension Bool: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(self ? "t" : "f", type: .bool) }
}

extension Double: PostgresEncodable {
    public var postgresValue: PostgresValue {
        // Swift spells these `inf`/`nan`; use PostgreSQL's documented spellings.
        let text =
            if isNaN { "NaN" } else if isInfinite { self < 0 ? "-Infinity" : "Infinity" } else { String(self) }
        return .text(text, type: .float8)
    }
}

extension UUID: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(uuidString, type: .uuid) }
}

extension Date: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(PostgresTimestamp.format(self), type: .timestamptz) }
}

extension Array: PostgresEncodable where Element == UInt8 {
    public var postgresValue: PostgresValue { .bytes(self) }
}

extension Data: PostgresEncodable {
    public var postgresValue: PostgresValue { .bytes(self) }
}
