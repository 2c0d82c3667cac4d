/// Why an event was refused: malformed, missing or invalid attributes, data that breaks
/// its type's schema, or a type the catalog does not know. Names the field and the rule.
public struct EventError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// Not JSON, or not a JSON object.
        public static let malformed = Code(name: "malformed")
        /// A required CloudEvents attribute is missing or has the wrong form.
        public static let invalidAttribute = Code(name: "invalidAttribute")
        /// `data` breaks the JSON Schema of the event's type.
        public static let schemaViolation = Code(name: "schemaViolation")
        /// The catalog has no schema for the type and no open pattern matches it.
        public static let unknownType = Code(name: "unknownType")
        /// The event is larger than allowed.
        public static let oversized = Code(name: "oversized")
    }

    public var code: Code
    /// JSON path of the offending field, e.g. `data.amount` or `time`.
    public var field: String?
    public var message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { "\(field): \(message)" } else { message }
    }
}
