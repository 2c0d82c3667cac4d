import Testing
@testable import WarrenCore

@Suite struct JSONSchemaTests {
    @Test func typeNamesTheExpectedType() throws {
        let integer = try schema(["type": "integer"])
        #expect(violations(integer, 3) == [])
        #expect(violations(integer, 3.0) == [])
        #expect(violations(integer, 3.5) == ["data: must be an integer"])
        #expect(violations(integer, "3") == ["data: must be an integer"])

        let number = try schema(["type": "number"])
        #expect(violations(number, 3) == [])
        #expect(violations(number, 3.5) == [])
        #expect(violations(number, true) == ["data: must be a number"])

        let several = try schema(["type": ["string", "integer", "null"]])
        #expect(violations(several, nil) == [])
        #expect(violations(several, "x") == [])
        #expect(violations(several, [1]) == ["data: must be a string, an integer or null"])

        #expect(violations(try schema(["type": "boolean"]), 0) == ["data: must be a boolean"])
        #expect(violations(try schema(["type": "array"]), [:]) == ["data: must be an array"])
        #expect(violations(try schema(["type": "object"]), []) == ["data: must be an object"])
        #expect(violations(try schema(["type": "null"]), false) == ["data: must be null"])
    }

    @Test func requiredPropertiesAndAdditionalProperties() throws {
        let person = try schema([
            "type": "object",
            "properties": ["name": ["type": "string"], "age": ["type": "integer"]],
            "required": ["name"],
            "additionalProperties": false,
        ])
        #expect(violations(person, ["name": "Ada", "age": 36]) == [])
        #expect(violations(person, ["age": 36.5]) == ["data.name: is required", "data.age: must be an integer"])
        #expect(violations(person, ["name": "Ada", "first name": "A"]) == [#"data["first name"]: is not allowed (additionalProperties: false)"#])

        let tags = try schema(["additionalProperties": ["type": "string"]])
        #expect(violations(tags, ["a": "x", "b": 2]) == ["data.b: must be a string"])

        let forbidden = try schema(["properties": ["legacy": false]])
        #expect(violations(forbidden, ["legacy": 1]) == ["data.legacy: is not allowed"])
        #expect(violations(forbidden, [:]) == [])
    }

    @Test func propertyCounts() throws {
        let some = try schema(["minProperties": 1, "maxProperties": 2])
        #expect(violations(some, [:]) == ["data: must have at least 1 property"])
        #expect(violations(some, ["a": 1, "b": 2, "c": 3]) == ["data: must have at most 2 properties"])
        #expect(violations(some, "not an object") == [])
    }

    @Test func enumAndConst() throws {
        let currency = try schema(["enum": ["EUR", "USD"]])
        #expect(violations(currency, "EUR") == [])
        #expect(violations(currency, "GBP") == [#"data: must be one of ["EUR","USD"]"#])

        let version = try schema(["const": 2])
        #expect(violations(version, 2) == [])
        #expect(violations(version, 2.0) == [], "numbers compare by value")
        #expect(violations(version, "2") == ["data: must be equal to 2"])

        let shape = try schema(["const": ["a": [1, nil]]])
        #expect(violations(shape, ["a": [1, nil]]) == [])
        #expect(violations(shape, ["a": [1]]) == [#"data: must be equal to {"a":[1,null]}"#])
    }

    @Test func stringLengthCountsCharacters() throws {
        let code = try schema(["minLength": 2, "maxLength": 3])
        #expect(violations(code, "🇫🇷🇩🇪") == [], "two flags are two characters, though eight scalars")
        #expect(violations(code, "é") == ["data: must be at least 2 characters long"])
        #expect(violations(code, "abcd") == ["data: must be at most 3 characters long"])
        #expect(violations(code, 12345) == [])
    }

    @Test func patternIsUnanchored() throws {
        let digits = try schema(["pattern": "[0-9]+"])
        #expect(violations(digits, "abc123def") == [])
        #expect(violations(digits, "abc") == ["data: must match pattern [0-9]+"])
        let anchored = try schema(["pattern": "^[A-Z]{3}$"])
        #expect(violations(anchored, "EURO") == ["data: must match pattern ^[A-Z]{3}$"])
    }

    @Test(arguments: [
        ("ada@example.com", true), ("ada.lovelace+tag@mail.example.co.uk", true), ("o'brien@example.ie", true),
        ("jürgen@bücher.de", true), ("", false), ("ada", false), ("ada@", false), ("@example.com", false),
        ("ada@example", false), ("ada@@example.com", false), ("ada@exa mple.com", false), ("a da@example.com", false),
        ("ada.@example.com", false), (".ada@example.com", false), ("ada..l@example.com", false),
        ("ada@-example.com", false), ("ada@example..com", false), ("ada@1.2.3.4", false), ("<ada@example.com>", false),
    ])
    func emailFormat(address: String, valid: Bool) throws {
        let email = try schema(["format": "email"])
        #expect(violations(email, .string(address)) == (valid ? [] : ["data: must be a valid email address"]))
    }

    /// ASCII addresses take a byte-level path; it must agree with the general rules on
    /// every string, including the awkward ones a random walk over the relevant bytes finds.
    @Test func asciiEmailPathAgreesWithTheGeneralRules() {
        let alphabet = Array("aZ09.-@_+'!x".utf8)
        var generator = SystemRandomNumberGenerator()
        for length in 0...12 {
            for _ in 0..<2_000 {
                let text = String(decoding: (0..<length).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
                #expect(
                    JSONSchema.Format.isASCIIEmailAddress(text.utf8) == JSONSchema.Format.isEmailAddressByCharacters(text),
                    "\(text)")
            }
        }
        #expect(JSONSchema.Format.isASCIIEmailAddress("jürgen@bücher.de".utf8) == nil)
    }

    @Test func uuidAndDateTimeFormats() throws {
        let uuid = try schema(["format": "uuid"])
        #expect(violations(uuid, "0b9e8f5e-6c1f-4a55-9d2e-6f1f4a2c7b10") == [])
        #expect(violations(uuid, "0B9E8F5E-6C1F-4A55-9D2E-6F1F4A2C7B10") == [])
        #expect(violations(uuid, "0b9e8f5e6c1f4a559d2e6f1f4a2c7b10") == ["data: must be a valid UUID"])

        let time = try schema(["format": "date-time"])
        for text in ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00"] {
            #expect(violations(time, .string(text)) == [], "\(text)")
        }
        for text in ["2024-05-01", "yesterday", "2024-13-01T12:00:00Z"] {
            #expect(violations(time, .string(text)) == ["data: must be a valid RFC 3339 date-time"], "\(text)")
        }
    }

    @Test func numericBounds() throws {
        let bounded = try schema(["minimum": 0, "maximum": 10.5])
        #expect(violations(bounded, 0) == [])
        #expect(violations(bounded, 10.5) == [])
        #expect(violations(bounded, -1) == ["data: must be at least 0"])
        #expect(violations(bounded, 11) == ["data: must be at most 10.5"])

        let exclusive = try schema(["exclusiveMinimum": 0, "exclusiveMaximum": 1])
        #expect(violations(exclusive, 0.5) == [])
        #expect(violations(exclusive, 0) == ["data: must be greater than 0"])
        #expect(violations(exclusive, 1.0) == ["data: must be less than 1"])

        let huge = try schema(["maximum": .integer(Int64.max - 1)])
        #expect(violations(huge, .integer(Int64.max)) == ["data: must be at most 9223372036854775806"], "integers compare exactly")
    }

    @Test func arrays() throws {
        let list = try schema(["type": "array", "items": ["type": "integer", "minimum": 1], "minItems": 1, "maxItems": 3])
        #expect(violations(list, [1, 2]) == [])
        #expect(violations(list, []) == ["data: must have at least 1 item"])
        #expect(violations(list, [1, 2, 3, 4]) == ["data: must have at most 3 items"])
        #expect(violations(list, [1, "2", 0]) == ["data[1]: must be an integer", "data[2]: must be at least 1"])

        let nested = try schema(["properties": ["items": ["items": ["required": ["sku"]]]]])
        #expect(violations(nested, ["items": [["sku": "a"], ["sku": "b"], [:]]]) == ["data.items[2].sku: is required"])

        let unique = try schema(["uniqueItems": true])
        #expect(violations(unique, [1, 2]) == [])
        #expect(violations(unique, [1, 2, 1.0]) == ["data[2]: must be unique (uniqueItems), but repeats an earlier item"])
    }

    @Test func composition() throws {
        let either = try schema(["anyOf": [["type": "string"], ["type": "integer"]]])
        #expect(violations(either, "a") == [])
        #expect(violations(either, 1) == [])
        #expect(violations(either, 1.5) == ["data: must match at least one anyOf branch: (data: must be a string) or (data: must be an integer)"])

        let exactlyOne = try schema(["oneOf": [["type": "integer"], ["type": "number"]]])
        #expect(violations(exactlyOne, 1.5) == [])
        #expect(violations(exactlyOne, 1) == ["data: must match exactly one oneOf branch, but matches branches 0 and 1"])
        #expect(violations(exactlyOne, "1") == ["data: must match exactly one oneOf branch: (data: must be an integer) or (data: must be a number)"])

        let both = try schema(["allOf": [["minLength": 2], ["pattern": "^a"]]])
        #expect(violations(both, "ab") == [])
        #expect(violations(both, "b") == ["data: must be at least 2 characters long", "data: must match pattern ^a"])

        let notNull = try schema(["not": ["type": "null"]])
        #expect(violations(notNull, 0) == [])
        #expect(violations(notNull, nil) == ["data: must not match the schema in not"])

        #expect(violations(try schema(true), ["any": "thing"]) == [])
        #expect(violations(try schema(false), 1) == ["data: is not allowed"])
    }

    @Test func localReferences() throws {
        let order = try schema([
            "$defs": [
                "money": ["type": "object", "required": ["amount"], "properties": ["amount": ["type": "integer"]]],
                "node": ["properties": ["child": ["$ref": "#/$defs/node"], "value": ["type": "string"]]],
            ],
            "properties": ["total": ["$ref": "#/$defs/money"], "tree": ["$ref": "#/$defs/node"]],
        ])
        #expect(violations(order, ["total": ["amount": 5]]) == [])
        #expect(violations(order, ["total": ["amount": 5.5]]) == ["data.total.amount: must be an integer"])
        #expect(violations(order, ["tree": ["child": ["child": ["value": 3]]]]) == ["data.tree.child.child.value: must be a string"])

        let list = try schema(["type": "array", "items": ["$ref": "#"]])
        #expect(violations(list, [[], [[1]]]) == ["data[1][0][0]: must be an array"])

        let loop = try schema(["$defs": ["a": ["allOf": [["$ref": "#/$defs/a"]]]], "$ref": "#/$defs/a"])
        #expect(violations(loop, 1) == ["data: cannot be checked: the schema's $ref chain loops without end"])
    }

    @Test func validationPathIsConfigurable() throws {
        let required = try schema(["required": ["id"]])
        #expect(required.validate([:], at: "payload").map(\.description) == ["payload.id: is required"])
        #expect(required.validate([:]).first?.code == .schemaViolation)
    }

    @Test func annotationsAndUnknownKeywordsAreIgnored() throws {
        let annotated = try schema([
            "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "title": "T", "description": "D",
            "examples": [1], "x-owner": "payments", "type": "integer",
        ])
        #expect(violations(annotated, 1) == [])
    }

    @Test(arguments: [
        (["type": 5], "#/type: must be a type name or a non-empty array of them"),
        (["type": "float"], #"#/type: unknown type "float" (known: null, boolean, object, array, number, integer, string)"#),
        (["required": "id"], "#/required: must be an array of property names"),
        (["required": ["id", "id"]], "#/required: must not repeat a name"),
        (["properties": ["a": 1]], "#/properties/a: a schema must be an object or a boolean"),
        (["minLength": -1], "#/minLength: must be a non-negative integer"),
        (["minLength": 3, "maxLength": 2], "#/minLength: is greater than its maximum, so nothing can match"),
        (["pattern": "[a-"], "#/pattern: not a valid regular expression: [a-"),
        (["format": "uri"], #"#/format: unsupported format "uri" (supported: date-time, email, uuid)"#),
        (["enum": []], "#/enum: must be a non-empty array"),
        (["anyOf": []], "#/anyOf: must be a non-empty array of schemas"),
        (["items": [["type": "string"]]], "#/items: must be a schema (draft 2020-12; tuple forms are not supported)"),
        (["$ref": "other.json#/$defs/a"], ##"#/$ref: only local references ("#" or "#/$defs/NAME") are supported, got "other.json#/$defs/a""##),
        (["$ref": "#/$defs/missing"], ##"#/$ref: "#/$defs/missing" is not defined in $defs"##),
        (["properties": ["a": ["$defs": [:]]]], "#/properties/a/$defs: $defs is only supported at the schema root"),
        (["if": ["type": "string"]], "#/if: keyword if is not supported by Warren's validator"),
        (["patternProperties": [:]], "#/patternProperties: keyword patternProperties is not supported by Warren's validator"),
        ("object", "#: a schema must be an object or a boolean"),
    ] as [(JSONValue, String)])
    func invalidSchemasAreRefusedWithTheirLocation(json: JSONValue, expected: String) {
        #expect {
            try JSONSchema(json: json, file: "events/x.schema.json")
        } throws: { error in
            let error = error as? CatalogError
            return error?.code == .invalidSchema && error?.description == "events/x.schema.json: \(expected)"
        }
    }

    @Test func unparsableFilesNameTheFile() {
        #expect(throws: CatalogError(.invalidJSON, file: "events/x.schema.json", "not valid JSON (invalid JSON at byte 9: unexpected end of input)")) {
            try JSONSchema(jsonBytes: Array("{\"type\": ".utf8), file: "events/x.schema.json")
        }
        #expect(throws: CatalogError(.unreadable, file: "/nonexistent.schema.json", "cannot read file")) {
            try JSONSchema(contentsOfFile: "/nonexistent.schema.json")
        }
    }
}
