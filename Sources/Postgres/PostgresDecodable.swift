#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Swift type that a column can be decoded into. Warren reads results in libpq's text
/// format, so a conformance parses the server's text output for the column types it accepts.
///
/// Make a column optional (`String?`) to accept NULL; otherwise NULL is a decoding error.
public protocol PostgresDecodable: Sendable {
    /// Returns nil when `type` is not one this Swift type accepts or `text` does not parse;
    /// the row turns that into a ``PostgresError`` naming the column and both types.
    init?(postgresText text: String, type: PostgresDataType)
}

/// Lets `Optional` decode NULL while every other type rejects it.
protocol PostgresNullDecodable {
    static var postgresNull: Self { get }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard let value = Wrapped(postgresText: text, type: type) else { return nil }
        self = .some(value)
    }
}

extension Optional: PostgresNullDecodable where Wrapped: PostgresDecodable {
    static var postgresNull: Self { .none }
}

extension String: PostgresDecodable {
    static let textTypes: Set<PostgresDataType> = [.text, .varchar, .bpchar, .name, .char, .unknown, .json, .jsonb]

    public init?(postgresText text: String, type: PostgresDataType) {
        guard Self.textTypes.contains(type) else { return nil }
        self = text
    }
}

extension FixedWidthInteger where Self: PostgresDecodable {
    init?(integerText text: String, type: PostgresDataType) {
        guard [.int2, .int4, .int8, .oidType].contains(type) else { return nil }
        self.init(text)
    }
}

extension Int: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) { self.init(integerText: text, type: type) }
}

extension Int64: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) { self.init(integerText: text, type: type) }
}

extension Int32: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) { self.init(integerText: text, type: type) }
}

extension Int16: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) { self.init(integerText: text, type: type) }
}

extension Bool: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard type == .bool else { return nil }
        switch text {
        case "t": self = true
        case "f": self = false
        default: return nil
        }
    }
}

extension Double: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard type == .float8 || type == .float4 else { return nil }
        self.init(text)
    }
}

extension UUID: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard type == .uuid else { return nil }
        self.init(uuidString: text)
    }
}

extension Date: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard type == .timestamptz || type == .timestamp, let date = PostgresTimestamp.parse(text) else { return nil }
        self = date
    }
}

extension Array: PostgresDecodable where Element == UInt8 {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard type == .bytea, let bytes = PostgresBytea.decodeHex(text) else { return nil }
        self = bytes
    }
}

extension Data: PostgresDecodable {
    public init?(postgresText text: String, type: PostgresDataType) {
        guard let bytes = [UInt8](postgresText: text, type: type) else { return nil }
        self.init(bytes)
    }
}

/// bytea's text output. Warren's sessions set `bytea_output = hex`: `\x` then two digits a byte.
enum PostgresBytea {
    static func decodeHex(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0
        else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
