import Foundation
import Testing
import WarrenCore

@Suite struct CloudEventTests {
    func parse(_ json: String) throws(EventError) -> CloudEvent {
        try CloudEvent(jsonBytes: Array(json.utf8))
    }

    @Test func roundTripKeepsEveryAttribute() throws {
        let time = try #require(RFC3339.parse("2024-05-01T10:00:00.250Z"))
        let event = CloudEvent(
            type: "payment.succeeded", source: "/services/billing",
            data: ["payment_id": "pi_1", "user_id": "usr_1", "amount": 1250, "currency": "EUR", "meta": ["ratio": 0.5, "tags": [], "note": nil]],
            id: "evt-1", time: time, subject: "usr_1")
        let parsed = try CloudEvent(jsonBytes: event.jsonBytes())
        #expect(parsed == event)
        #expect(parsed.data?["amount"] == .integer(1250), "integers stay integers")
        #expect(parsed.data?["meta"]?["ratio"] == .number(0.5))
    }

    /// The body bytes are exact: keys sorted, strings escaped as JSON requires (quote,
    /// backslash, control characters), everything else (non-ASCII too) as is.
    @Test func theBodyIsSortedCompactJSON() throws {
        let time = try #require(RFC3339.parse("2024-05-01T10:00:00.250Z"))
        let event = CloudEvent(
            type: "user.created", source: "/s", data: ["b": "quote \" back \\ tab \t nl \n bell \u{07} é", "a": [1, nil, true]],
            id: "e\"1", time: time, subject: "usr_1")
        let expected = #"{"data":{"a":[1,null,true],"b":"quote \" back \\ tab \t nl \n bell \u0007 é"},"datacontenttype":"application/json","#
            + #""id":"e\"1","source":"/s","specversion":"1.0","subject":"usr_1","time":"2024-05-01T10:00:00.250Z","type":"user.created"}"#
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self) == expected)
        let bare = CloudEvent(type: "t", source: "/s", data: nil, id: "e", time: nil, dataContentType: nil)
        #expect(String(decoding: bare.jsonBytes(), as: UTF8.self) == #"{"id":"e","source":"/s","specversion":"1.0","type":"t"}"#)
    }

    @Test func timeWithOffsetAndFractionalSeconds() throws {
        let event = try parse(
            #"{"specversion":"1.0","id":"e1","source":"/s","type":"user.deleted","time":"2024-05-01T12:00:00.123+02:00","data":{"id":"u"}}"#)
        let expected = Date(timeIntervalSince1970: 1_714_557_600.123)
        #expect(abs(try #require(event.time).timeIntervalSince(expected)) < 0.0005)

        let whole = try parse(#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","time":"2024-05-01T12:00:00+02:00"}"#)
        #expect(whole.time == Date(timeIntervalSince1970: 1_714_557_600))
        #expect(whole.data == nil)

        let again = try CloudEvent(jsonBytes: event.jsonBytes())
        #expect(abs(try #require(again.time).timeIntervalSince(expected)) < 0.0005, "written in UTC, read back to the same instant")
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self).contains(#""time":"2024-05-01T10:00:00.123Z""#))
    }

    @Test(arguments: ["specversion", "id", "source", "type"])
    func missingRequiredAttributeIsNamed(attribute: String) throws {
        var object: [String: JSONValue] = ["specversion": "1.0", "id": "e1", "source": "/s", "type": "user.deleted"]
        object[attribute] = nil
        let bytes = try JSONEncoder().encode(JSONValue.object(object))
        #expect(throws: EventError(.invalidAttribute, field: attribute, "required string attribute is missing or empty")) {
            try CloudEvent(jsonBytes: Array(bytes))
        }
    }

    @Test func otherEnvelopeErrors() {
        #expect(throws: EventError(.malformed, "not valid JSON (invalid JSON at byte 1: expected a string key)")) { try parse("{") }
        #expect(throws: EventError(.malformed, "a CloudEvent must be a JSON object")) { try parse("[]") }
        #expect(throws: EventError(.invalidAttribute, field: "specversion", #"must be "1.0", got "0.3""#)) {
            try parse(#"{"specversion":"0.3","id":"e1","source":"/s","type":"t"}"#)
        }
        #expect(throws: EventError(.invalidAttribute, field: "time", "must be an RFC 3339 timestamp")) {
            try parse(#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","time":"yesterday"}"#)
        }
        #expect(throws: EventError(.invalidAttribute, field: "subject", "must be a string")) {
            try parse(#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","subject":5}"#)
        }
    }

    @Test func parsedEventsValidateAgainstTheCatalog() throws {
        let catalog = try EventCatalog(directory: catalogDirectory)
        let event = try parse(
            #"{"specversion":"1.0","id":"e1","source":"/s","type":"payment.succeeded","data":{"payment_id":"p","user_id":"u","amount":12.5,"currency":"EUR"}}"#)
        #expect(throws: EventError(.schemaViolation, field: "data.amount", "must be an integer")) { try catalog.validate(event) }
    }

    /// Warren's own RFC 3339 reader against Foundation's on dates across four centuries,
    /// every offset form and fraction length, and the texts it must refuse.
    @Test func rfc3339AgreesWithFoundation() throws {
        var generator = SystemRandomNumberGenerator()
        let styles = [
            Date.ISO8601FormatStyle(includingFractionalSeconds: true),
            Date.ISO8601FormatStyle(includingFractionalSeconds: false),
            Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(secondsFromGMT: -(5 * 3600 + 30 * 60))!),
            Date.ISO8601FormatStyle(includingFractionalSeconds: false, timeZone: TimeZone(secondsFromGMT: 14 * 3600)!),
            Date.ISO8601FormatStyle(timeZoneSeparator: .colon, includingFractionalSeconds: true, timeZone: TimeZone(secondsFromGMT: 3600)!),
        ]
        for _ in 0..<2_000 {
            let date = Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800...7_258_118_400, using: &generator)) / 1)
                .addingTimeInterval(Double(Int.random(in: 0..<1000, using: &generator)) / 1000)
            for style in styles {
                let text = date.formatted(style)
                let ours = try #require(RFC3339.parse(text), "\(text)")
                let foundation = try style.parse(text)
                #expect(abs(ours.timeIntervalSince(foundation)) < 0.000_001, "\(text)")
            }
        }
        #expect(RFC3339.parse("2024-02-29T23:59:59.123456789z") != nil)
        for text in [
            "", "2024-05-01", "2024-05-01T12:00:00", "2024-05-01 12:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+02",
            "2024-05-01T12:00:00Z ", "24-05-01T12:00:00Z", "2024-05-01T12:00:00+24:00", "yesterday",
        ] {
            #expect(RFC3339.parse(text) == nil, "\(text)")
        }
    }

    /// `format` writes what Foundation's ISO 8601 style writes (UTC, milliseconds) for
    /// modern dates (to the millisecond), and every time `parse` reads formats back to the same instant — also
    /// before 1582, where Foundation switches to the Julian calendar (found by the fuzzer:
    /// an event's time of 1013-12-01 came back as another day).
    @Test func formatIsTheInverseOfParse() throws {
        var generator = SystemRandomNumberGenerator()
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        for _ in 0..<2_000 {
            let date = Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800...7_258_118_400, using: &generator)))
                .addingTimeInterval(Double(Int.random(in: 0..<1000, using: &generator)) / 1000)
            // Foundation truncates the Double (`.679` stored as .67899… prints `.678`);
            // ours rounds to the microsecond first. Same second, same instant within 1 ms.
            let ours = RFC3339.format(date)
            #expect(ours.prefix(19) == date.formatted(style).prefix(19), "\(ours)")
            #expect(abs(try #require(RFC3339.parse(ours)).timeIntervalSince(date)) < 0.001, "\(ours)")
        }
        for text in [
            "1013-12-01T10:00:00.000Z", "0001-01-01T00:00:00.000Z", "1582-10-04T23:59:59.999Z", "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z", "2024-02-29T12:00:00.123Z", "9999-12-31T23:59:59.999Z",
            // Far from 1970 a Double holds milliseconds only roughly (found by review).
            "1700-06-15T01:00:00.001Z", "9999-06-15T01:00:00.003Z", "0042-03-01T00:00:00.999Z",
        ] {
            let date = try #require(RFC3339.parse(text))
            #expect(RFC3339.format(date) == text)
        }
        #expect(RFC3339.format(try #require(RFC3339.parse("2024-05-01T12:00:00.123456+02:00"))) == "2024-05-01T10:00:00.123Z")
        // An offset that moves the instant out of 0000-9999 is refused, not written oddly.
        #expect(RFC3339.parse("0000-01-01T00:00:00+01:00") == nil && RFC3339.parse("9999-12-31T23:00:00-01:00") == nil)
    }
}

@Suite struct TraceparentTests {
    @Test func keepsOnlyWellFormedW3CTraceparents() {
        var event = CloudEvent(type: "user.created", source: "/t", data: nil)
        for valid in ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future"] {
            event.traceparent = valid
            #expect(event.traceparent == valid)
        }
        for invalid in [
            "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Evil: 1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            event.traceparent = invalid
            #expect(event.traceparent == nil, "\(invalid)")
        }
    }

    @Test func isNotPartOfTheJSON() {
        var event = CloudEvent(type: "user.created", source: "/t", data: nil, id: "e1", time: nil)
        event.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(!String(decoding: event.jsonBytes(), as: UTF8.self).contains("traceparent"))
    }
}
