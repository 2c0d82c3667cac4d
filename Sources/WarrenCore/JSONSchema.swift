import Foundation

/// A JSON Schema (draft 2020-12), parsed once and checked for mistakes when loaded.
///
/// Warren supports the subset its event catalog needs: `type`, `properties`, `required`,
/// `additionalProperties`, `enum`, `const`, `minLength`/`maxLength`, `pattern`, `format`
/// (`email`, `uuid`, `date-time`), `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`,
/// `minProperties`/`maxProperties`, `items`, `minItems`/`maxItems`, `uniqueItems`,
/// `anyOf`/`oneOf`/`allOf`/`not` and `$ref` to `#` or `#/$defs/NAME`. Annotations
/// (`$schema`, `$id`, `title`, `description`, `examples`, …) are ignored. A keyword that
/// would constrain data but is not supported is a load error rather than silently
/// accepting everything.
public struct JSONSchema: Sendable {
    let root: Node
    /// The root's `$defs`, the only place `$ref` can point to.
    let definitions: [String: Node]

    /// Parses a schema. `file` only names the source in errors.
    public init(json: JSONValue, file: String? = nil) throws(CatalogError) {
        var parser = Parser(file: file, definitionNames: [])
        if case .object(let object) = json, let defs = object["$defs"] {
            guard case .object(let defs) = defs else { throw parser.error("#/$defs", "must be an object of schemas") }
            parser.definitionNames = Set(defs.keys)
            var parsed: [String: Node] = [:]
            for (name, schema) in defs {
                parsed[name] = try parser.node(schema, at: "#/$defs/" + Parser.escape(name))
            }
            definitions = parsed
        } else {
            definitions = [:]
        }
        root = try parser.node(json, at: "#", isRoot: true)
    }

    /// Parses a schema from JSON text.
    public init(jsonBytes: [UInt8], file: String? = nil) throws(CatalogError) {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: jsonBytes)
        } catch {
            throw CatalogError(.invalidJSON, file: file, "not valid JSON (\(error))")
        }
        try self.init(json: json, file: file)
    }

    /// Reads and parses a schema file; errors name the file.
    public init(contentsOfFile path: String) throws(CatalogError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CatalogError(.unreadable, file: path, "cannot read file")
        }
        try self.init(jsonBytes: Array(data), file: path)
    }
}

// MARK: Parsed form

extension JSONSchema {
    indirect enum Node: Sendable {
        /// `true` accepts everything, `false` nothing.
        case boolean(Bool)
        case rules(Rules)
    }

    enum InstanceType: String, Sendable, CaseIterable {
        case null, boolean, object, array, number, integer, string

        var phrase: String {
            switch self {
            case .null: "null"
            case .boolean: "a boolean"
            case .object: "an object"
            case .array: "an array"
            case .number: "a number"
            case .integer: "an integer"
            case .string: "a string"
            }
        }
    }

    enum Format: String, Sendable, CaseIterable {
        case email, uuid, dateTime = "date-time"
    }

    /// The keywords of one schema object; `nil` or empty means "not present".
    struct Rules: Sendable {
        var types: [InstanceType]?
        var enumValues: [JSONValue]?
        var constValue: JSONValue?
        // objects
        var properties: [(name: String, schema: Node)] = []
        var required: [String] = []
        var additionalProperties: Node?
        var minProperties: Int?
        var maxProperties: Int?
        // strings
        var minLength: Int?
        var maxLength: Int?
        var pattern: Pattern?
        var format: Format?
        // numbers
        var minimum: JSONNumber?
        var maximum: JSONNumber?
        var exclusiveMinimum: JSONNumber?
        var exclusiveMaximum: JSONNumber?
        // arrays
        var items: Node?
        var minItems: Int?
        var maxItems: Int?
        var uniqueItems = false
        // composition
        var allOf: [Node] = []
        var anyOf: [Node]?
        var oneOf: [Node]?
        var not: Node?
        /// Where `$ref` points, if present.
        var reference: Reference?
    }

    enum Reference: Sendable {
        case root
        case definition(String)
    }

    /// A compiled `pattern`, kept with its source for messages.
    struct Pattern: Sendable {
        let source: String
        let regex: NSRegularExpression

        func matches(_ text: String) -> Bool {
            regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        }
    }
}

/// A JSON number compared exactly when both sides are integers.
struct JSONNumber: Sendable, CustomStringConvertible {
    let value: JSONValue

    init?(_ value: JSONValue) {
        switch value {
        case .integer, .number: self.value = value
        default: return nil
        }
    }

    var description: String {
        switch value {
        case .integer(let i): String(i)
        case .number(let d): d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        default: ""
        }
    }

    static func compare(_ lhs: JSONNumber, _ rhs: JSONNumber) -> ComparisonResult {
        switch (lhs.value, rhs.value) {
        case (.integer(let a), .integer(let b)):
            return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        default:
            let a = lhs.doubleValue, b = rhs.doubleValue
            return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        }
    }

    private var doubleValue: Double {
        switch value {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: .nan
        }
    }
}

// MARK: Parsing

extension JSONSchema {
    /// Turns JSON into `Node`s, rejecting misuse with the JSON pointer of the culprit.
    struct Parser {
        let file: String?
        var definitionNames: Set<String>

        /// Keywords that carry no validation; ignored.
        static let annotations: Set<String> = [
            "$schema", "$id", "$comment", "$anchor", "$vocabulary", "title", "description", "examples", "default",
            "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
        ]
        /// 2020-12 assertions Warren does not implement: refusing them beats accepting
        /// data the author meant to reject.
        static let unsupported: Set<String> = [
            "if", "then", "else", "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
            "prefixItems", "contains", "minContains", "maxContains", "unevaluatedItems", "unevaluatedProperties",
            "multipleOf", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "dependencies", "definitions",
        ]

        static func escape(_ token: String) -> String {
            token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
        }

        static func unescape(_ token: String) -> String {
            token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }

        func error(_ location: String, _ message: String) -> CatalogError {
            CatalogError(.invalidSchema, file: file, location: location, message)
        }

        func node(_ json: JSONValue, at location: String, isRoot: Bool = false) throws(CatalogError) -> Node {
            switch json {
            case .bool(let accepts): return .boolean(accepts)
            case .object(let object): return .rules(try rules(object, at: location, isRoot: isRoot))
            default: throw error(location, "a schema must be an object or a boolean")
            }
        }

        private func rules(_ object: [String: JSONValue], at location: String, isRoot: Bool) throws(CatalogError) -> Rules {
            var rules = Rules()
            // Sorted so that the first problem reported does not depend on hashing.
            for (keyword, value) in object.sorted(by: { $0.key < $1.key }) {
                let here = location + "/" + Self.escape(keyword)
                switch keyword {
                case "type":
                    rules.types = try types(value, at: here)
                case "enum":
                    guard case .array(let values) = value, !values.isEmpty else { throw error(here, "must be a non-empty array") }
                    rules.enumValues = values
                case "const":
                    rules.constValue = value
                case "properties":
                    guard case .object(let properties) = value else { throw error(here, "must be an object of schemas") }
                    rules.properties = try properties.sorted(by: { $0.key < $1.key }).map { (entry) throws(CatalogError) in
                        (entry.key, try node(entry.value, at: here + "/" + Self.escape(entry.key)))
                    }
                case "required":
                    guard case .array(let names) = value else { throw error(here, "must be an array of property names") }
                    rules.required = try names.map { (name) throws(CatalogError) in
                        guard let name = name.stringValue else { throw error(here, "must be an array of property names") }
                        return name
                    }
                    guard Set(rules.required).count == rules.required.count else { throw error(here, "must not repeat a name") }
                case "additionalProperties": rules.additionalProperties = try node(value, at: here)
                case "minProperties": rules.minProperties = try count(value, at: here)
                case "maxProperties": rules.maxProperties = try count(value, at: here)
                case "minLength": rules.minLength = try count(value, at: here)
                case "maxLength": rules.maxLength = try count(value, at: here)
                case "pattern": rules.pattern = try pattern(value, at: here)
                case "format":
                    guard let name = value.stringValue, let format = Format(rawValue: name) else {
                        let supported = Format.allCases.map(\.rawValue).sorted().joined(separator: ", ")
                        throw error(here, "unsupported format \(value.compactJSON) (supported: \(supported))")
                    }
                    rules.format = format
                case "minimum": rules.minimum = try number(value, at: here)
                case "maximum": rules.maximum = try number(value, at: here)
                case "exclusiveMinimum": rules.exclusiveMinimum = try number(value, at: here)
                case "exclusiveMaximum": rules.exclusiveMaximum = try number(value, at: here)
                case "items":
                    if case .array = value { throw error(here, "must be a schema (draft 2020-12; tuple forms are not supported)") }
                    rules.items = try node(value, at: here)
                case "minItems": rules.minItems = try count(value, at: here)
                case "maxItems": rules.maxItems = try count(value, at: here)
                case "uniqueItems":
                    guard case .bool(let unique) = value else { throw error(here, "must be a boolean") }
                    rules.uniqueItems = unique
                case "allOf": rules.allOf = try nodes(value, at: here)
                case "anyOf": rules.anyOf = try nodes(value, at: here)
                case "oneOf": rules.oneOf = try nodes(value, at: here)
                case "not": rules.not = try node(value, at: here)
                case "$ref": rules.reference = try reference(value, at: here)
                case "$defs":
                    // The root's definitions are parsed by `JSONSchema.init`.
                    guard isRoot else { throw error(here, "$defs is only supported at the schema root") }
                case _ where Self.unsupported.contains(keyword):
                    throw error(here, "keyword \(keyword) is not supported by Warren's validator")
                default:
                    // Annotations and unknown keywords carry no assertion (draft 2020-12 §4.3.1).
                    continue
                }
            }
            for (low, high, name) in [
                (rules.minLength, rules.maxLength, "minLength"), (rules.minItems, rules.maxItems, "minItems"),
                (rules.minProperties, rules.maxProperties, "minProperties"),
            ] {
                if let low, let high, low > high {
                    throw error(location + "/" + name, "is greater than its maximum, so nothing can match")
                }
            }
            return rules
        }

        private func types(_ value: JSONValue, at location: String) throws(CatalogError) -> [InstanceType] {
            let names: [JSONValue]
            switch value {
            case .string: names = [value]
            case .array(let array) where !array.isEmpty: names = array
            default: throw error(location, "must be a type name or a non-empty array of them")
            }
            return try names.map { (name) throws(CatalogError) in
                guard let type = name.stringValue.flatMap(InstanceType.init(rawValue:)) else {
                    let known = InstanceType.allCases.map(\.rawValue).joined(separator: ", ")
                    throw error(location, "unknown type \(name.compactJSON) (known: \(known))")
                }
                return type
            }
        }

        private func count(_ value: JSONValue, at location: String) throws(CatalogError) -> Int {
            guard let count = value.intValue, count >= 0, let result = Int(exactly: count) else {
                throw error(location, "must be a non-negative integer")
            }
            return result
        }

        private func number(_ value: JSONValue, at location: String) throws(CatalogError) -> JSONNumber {
            guard let number = JSONNumber(value) else { throw error(location, "must be a number") }
            return number
        }

        private func nodes(_ value: JSONValue, at location: String) throws(CatalogError) -> [Node] {
            guard case .array(let schemas) = value, !schemas.isEmpty else {
                throw error(location, "must be a non-empty array of schemas")
            }
            return try schemas.enumerated().map { (entry) throws(CatalogError) in
                try node(entry.element, at: "\(location)/\(entry.offset)")
            }
        }

        private func pattern(_ value: JSONValue, at location: String) throws(CatalogError) -> Pattern {
            guard let source = value.stringValue else { throw error(location, "must be a string") }
            do {
                return Pattern(source: source, regex: try NSRegularExpression(pattern: source))
            } catch {
                throw self.error(location, "not a valid regular expression: \(source)")
            }
        }

        private func reference(_ value: JSONValue, at location: String) throws(CatalogError) -> Reference {
            guard let target = value.stringValue else { throw error(location, "must be a string") }
            if target == "#" { return .root }
            let prefix = "#/$defs/"
            guard target.hasPrefix(prefix), !target.dropFirst(prefix.count).contains("/") else {
                throw error(location, "only local references (\"#\" or \"#/$defs/NAME\") are supported, got \"\(target)\"")
            }
            let name = Self.unescape(String(target.dropFirst(prefix.count)))
            guard definitionNames.contains(name) else { throw error(location, "\"\(target)\" is not defined in $defs") }
            return .definition(name)
        }
    }
}

extension JSONValue {
    /// One-line JSON with sorted keys, for messages.
    var compactJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }
}
