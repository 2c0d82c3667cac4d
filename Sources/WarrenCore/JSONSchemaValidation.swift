import Foundation

extension JSONSchema {
    /// Every way `value` breaks the schema, in a stable order (type, required, then
    /// properties by name), each as a `.schemaViolation` naming the JSON path (`data.amount`,
    /// `data.items[2]`) and the rule. Empty when the value is valid.
    public func validate(_ value: JSONValue, at path: String = "data") -> [EventError] {
        var validator = Validator(definitions: definitions, root: root)
        validator.check(root, value, at: path, refsWithoutProgress: 0)
        return validator.errors
    }

    /// Whether `value` is valid; cheaper to read than `validate(_:).isEmpty`.
    public func accepts(_ value: JSONValue) -> Bool {
        validate(value).isEmpty
    }
}

/// Walks a value and a schema together, collecting violations.
private struct Validator {
    let definitions: [String: JSONSchema.Node]
    let root: JSONSchema.Node
    var errors: [EventError] = []

    /// `$ref` chains that do not descend into the value (`{"$ref": "#"}` at the root)
    /// would never end; the schema loader cannot see every such cycle through
    /// `allOf`/`anyOf`, so the walk stops here.
    static let maximumRefsWithoutProgress = 32

    mutating func fail(_ path: String, _ message: String) {
        errors.append(EventError(.schemaViolation, field: path, message))
    }

    /// The errors a subschema alone would report, without adding them.
    func errors(of node: JSONSchema.Node, _ value: JSONValue, at path: String, refsWithoutProgress: Int) -> [EventError] {
        var branch = Validator(definitions: definitions, root: root)
        branch.check(node, value, at: path, refsWithoutProgress: refsWithoutProgress)
        return branch.errors
    }

    mutating func check(_ node: JSONSchema.Node, _ value: JSONValue, at path: String, refsWithoutProgress: Int) {
        switch node {
        case .boolean(true): return
        case .boolean(false): fail(path, "is not allowed")
        case .rules(let rules): check(rules, value, at: path, refsWithoutProgress: refsWithoutProgress)
        }
    }

    private mutating func check(_ rules: JSONSchema.Rules, _ value: JSONValue, at path: String, refsWithoutProgress: Int) {
        if let types = rules.types, !types.contains(where: { Self.value(value, is: $0) }) {
            fail(path, "must be " + Self.list(types.map(\.phrase), conjunction: "or"))
        }
        if let values = rules.enumValues, !values.contains(where: { Self.equal($0, value) }) {
            fail(path, "must be one of \(JSONValue.array(values).compactJSON)")
        }
        if let constant = rules.constValue, !Self.equal(constant, value) {
            fail(path, "must be equal to \(constant.compactJSON)")
        }
        switch value {
        case .object(let object): checkObject(rules, object, at: path)
        case .array(let array): checkArray(rules, array, at: path)
        case .string(let string): checkString(rules, string, at: path)
        case .integer, .number: checkNumber(rules, JSONNumber(value)!, at: path)
        case .null, .bool: break
        }
        checkComposition(rules, value, at: path, refsWithoutProgress: refsWithoutProgress)
    }

    private mutating func checkObject(_ rules: JSONSchema.Rules, _ object: [String: JSONValue], at path: String) {
        for name in rules.required where object[name] == nil {
            fail(Self.path(path, property: name), "is required")
        }
        if let minimum = rules.minProperties, object.count < minimum {
            fail(path, "must have at least \(Self.counted(minimum, "property", "properties"))")
        }
        if let maximum = rules.maxProperties, object.count > maximum {
            fail(path, "must have at most \(Self.counted(maximum, "property", "properties"))")
        }
        for (name, schema) in rules.properties {
            if let member = object[name] { check(schema, member, at: Self.path(path, property: name), refsWithoutProgress: 0) }
        }
        guard let additional = rules.additionalProperties else { return }
        let declared = Set(rules.properties.map(\.name))
        for (name, member) in object.sorted(by: { $0.key < $1.key }) where !declared.contains(name) {
            let memberPath = Self.path(path, property: name)
            if case .boolean(false) = additional {
                fail(memberPath, "is not allowed (additionalProperties: false)")
            } else {
                check(additional, member, at: memberPath, refsWithoutProgress: 0)
            }
        }
    }

    private mutating func checkArray(_ rules: JSONSchema.Rules, _ array: [JSONValue], at path: String) {
        if let minimum = rules.minItems, array.count < minimum {
            fail(path, "must have at least \(Self.counted(minimum, "item", "items"))")
        }
        if let maximum = rules.maxItems, array.count > maximum {
            fail(path, "must have at most \(Self.counted(maximum, "item", "items"))")
        }
        if rules.uniqueItems {
            outer: for (index, item) in array.enumerated() {
                for earlier in array[..<index] where Self.equal(earlier, item) {
                    fail("\(path)[\(index)]", "must be unique (uniqueItems), but repeats an earlier item")
                    break outer
                }
            }
        }
        if let items = rules.items {
            for (index, item) in array.enumerated() {
                check(items, item, at: "\(path)[\(index)]", refsWithoutProgress: 0)
            }
        }
    }

    private mutating func checkString(_ rules: JSONSchema.Rules, _ string: String, at path: String) {
        if let minimum = rules.minLength, string.count < minimum {
            fail(path, "must be at least \(Self.counted(minimum, "character", "characters")) long")
        }
        if let maximum = rules.maxLength, string.count > maximum {
            fail(path, "must be at most \(Self.counted(maximum, "character", "characters")) long")
        }
        if let pattern = rules.pattern, !pattern.matches(string) {
            fail(path, "must match pattern \(pattern.source)")
        }
        if let format = rules.format, !format.accepts(string) {
            fail(path, "must be \(format.phrase)")
        }
    }

    private mutating func checkNumber(_ rules: JSONSchema.Rules, _ number: JSONNumber, at path: String) {
        if let minimum = rules.minimum, JSONNumber.compare(number, minimum) == .orderedAscending {
            fail(path, "must be at least \(minimum)")
        }
        if let maximum = rules.maximum, JSONNumber.compare(number, maximum) == .orderedDescending {
            fail(path, "must be at most \(maximum)")
        }
        if let bound = rules.exclusiveMinimum, JSONNumber.compare(number, bound) != .orderedDescending {
            fail(path, "must be greater than \(bound)")
        }
        if let bound = rules.exclusiveMaximum, JSONNumber.compare(number, bound) != .orderedAscending {
            fail(path, "must be less than \(bound)")
        }
    }

    private mutating func checkComposition(_ rules: JSONSchema.Rules, _ value: JSONValue, at path: String, refsWithoutProgress: Int) {
        if let reference = rules.reference {
            guard refsWithoutProgress < Self.maximumRefsWithoutProgress else {
                fail(path, "cannot be checked: the schema's $ref chain loops without end")
                return
            }
            let target: JSONSchema.Node? =
                switch reference {
                case .root: root
                case .definition(let name): definitions[name]
                }
            // The parser only accepts references to existing definitions.
            if let target { check(target, value, at: path, refsWithoutProgress: refsWithoutProgress + 1) }
        }
        for schema in rules.allOf {
            check(schema, value, at: path, refsWithoutProgress: refsWithoutProgress)
        }
        if let branches = rules.anyOf {
            let failures = branches.map { errors(of: $0, value, at: path, refsWithoutProgress: refsWithoutProgress) }
            if !failures.contains(where: \.isEmpty) {
                fail(path, "must match at least one anyOf branch: " + Self.summary(of: failures))
            }
        }
        if let branches = rules.oneOf {
            let failures = branches.map { errors(of: $0, value, at: path, refsWithoutProgress: refsWithoutProgress) }
            let matching = failures.indices.filter { failures[$0].isEmpty }
            if matching.isEmpty {
                fail(path, "must match exactly one oneOf branch: " + Self.summary(of: failures))
            } else if matching.count > 1 {
                fail(path, "must match exactly one oneOf branch, but matches branches " + Self.list(matching.map(String.init), conjunction: "and"))
            }
        }
        if let excluded = rules.not, errors(of: excluded, value, at: path, refsWithoutProgress: refsWithoutProgress).isEmpty {
            fail(path, "must not match the schema in not")
        }
    }

    // MARK: Helpers

    static func value(_ value: JSONValue, is type: JSONSchema.InstanceType) -> Bool {
        switch (type, value) {
        case (.null, .null), (.boolean, .bool), (.object, .object), (.array, .array), (.string, .string): true
        case (.number, .integer), (.number, .number), (.integer, .integer): true
        // 2020-12: "integer" is any number with a zero fractional part, so 1.0 counts.
        case (.integer, .number(let d)): d.isFinite && d.rounded(.towardZero) == d
        default: false
        }
    }

    /// JSON equality as the spec defines it: numbers by value, so `1` equals `1.0`.
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.integer, .number), (.number, .integer), (.number, .number):
            JSONNumber.compare(JSONNumber(a)!, JSONNumber(b)!) == .orderedSame
        case (.array(let x), .array(let y)):
            x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            x.count == y.count && x.allSatisfy { key, value in y[key].map { equal(value, $0) } ?? false }
        default:
            a == b
        }
    }

    /// `data.name` for identifier-like names, `data["first name"]` otherwise.
    static func path(_ path: String, property name: String) -> String {
        // Over bytes: this runs for every property of every valid event.
        func letter(_ b: UInt8) -> Bool { b == UInt8(ascii: "_") || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z")) }
        let isIdentifier = name.utf8.first.map(letter) == true
            && name.utf8.allSatisfy { letter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        return isIdentifier ? "\(path).\(name)" : "\(path)[\(JSONValue.string(name).compactJSON)]"
    }

    static func counted(_ count: Int, _ singular: String, _ plural: String) -> String {
        "\(count) \(count == 1 ? singular : plural)"
    }

    /// `a`, `a or b`, `a, b or c`.
    static func list(_ items: [String], conjunction: String) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " \(conjunction) " + items.last!
    }

    /// Why each branch failed: `(data.name: is required) or (data.email: is required)`.
    static func summary(of failures: [[EventError]]) -> String {
        failures.map { "(" + $0.map(\.description).joined(separator: ", ") + ")" }.joined(separator: " or ")
    }
}
