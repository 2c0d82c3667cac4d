import Foundation
import Testing
import WarrenCore

@Suite struct JSONCodingTests {
    @Test func parsesEveryKindOfValue() throws {
        let text = #"""
            { "s": "a\"b\\c\/d\n\u00e9\ud83d\ude00", "i": -42, "big": 9223372036854775807, "f": 12.5, "e": 1e3,
              "t": true, "n": null, "a": [1, [], {}], "o": {"k": false} }
            """#
        let value = try JSONValue(parsing: Array(text.utf8))
        #expect(value["s"] == .string("a\"b\\c/d\né😀"))
        #expect(value["i"] == .integer(-42))
        #expect(value["big"] == .integer(Int64.max))
        #expect(value["f"] == .number(12.5))
        #expect(value["e"] == .number(1000))
        #expect(value["t"] == .bool(true))
        #expect(value["n"] == .null)
        #expect(value["a"] == .array([.integer(1), .array([]), .object([:])]))
        #expect(value["o"] == .object(["k": .bool(false)]))
    }

    @Test func integersTooBigForSixtyFourBitsBecomeNumbers() throws {
        #expect(try JSONValue(parsing: Array("18446744073709551616".utf8)) == .number(18446744073709551616))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "1e", "tru", "\"abc", "\"\\x\"", "\"\\ud800\"",
        "{} {}", "[1 2]", "\"tab\there\"", "nul", "{'a':1}",
    ])
    func refusesInvalidJSON(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func refusesNestingBeyondTheLimit() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: Array(deep.utf8)) }
    }

    @Test func serializedOutputParsesBackAndAgreesWithFoundation() throws {
        let value: JSONValue = [
            "quote": "say \"hi\"\n\t\u{1}", "emoji": "😀", "int": 7, "neg": -1, "double": 0.1, "list": [true, nil, 1.5e-7],
            "nested": ["z": 1, "a": 2],
        ]
        let bytes = value.serialized()
        #expect(try JSONValue(parsing: bytes) == value)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"double":0.1,"emoji":"😀","int":7"#), "keys sorted")
        let foundation = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect(foundation?["quote"] as? String == "say \"hi\"\n\t\u{1}")
        #expect(foundation?.count == 7)
    }
}
