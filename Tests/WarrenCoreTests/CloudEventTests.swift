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
}
