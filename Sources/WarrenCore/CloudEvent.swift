import Foundation

/// A domain event as Warren carries it: CloudEvents 1.0 in structured JSON mode
/// (`application/cloudevents+json`).
public struct CloudEvent: Sendable, Hashable {
    public static let contentType = "application/cloudevents+json"
    public static let specVersion = "1.0"

    public var id: String
    /// URI-reference of the producer, e.g. `/services/accounts`.
    public var source: String
    /// The event type, also the routing key, e.g. `user.created`.
    public var type: String
    public var time: Date?
    public var subject: String?
    public var dataContentType: String?
    public var data: JSONValue?
    /// W3C trace context the event travelled with (the AMQP `traceparent` header; an HTTP
    /// header of outbound webhooks), not part of its JSON. Only a well-formed value is kept.
    public var traceparent: String? {
        get { _traceparent }
        set { _traceparent = newValue.flatMap { TraceContext.isValid($0) ? $0 : nil } }
    }
    private var _traceparent: String?
    /// The `tracestate` that came with `traceparent` (the AMQP header of the same name).
    public var tracestate: String?

    /// The trace the event belongs to, if it carries a valid one.
    public var traceContext: TraceContext? {
        get { traceparent.flatMap { TraceContext(traceparent: $0, tracestate: tracestate) } }
        set {
            traceparent = newValue?.traceparent
            tracestate = newValue?.state
        }
    }

    public init(
        type: String, source: String, data: JSONValue?, id: String = UUID().uuidString.lowercased(),
        time: Date? = Date(), subject: String? = nil, dataContentType: String? = "application/json"
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.subject = subject
        self.dataContentType = dataContentType
        self.data = data
    }
}

// MARK: JSON (structured mode)

extension CloudEvent {
    /// The event as one JSON object, keys sorted, time in RFC 3339 with milliseconds.
    public func jsonBytes() -> [UInt8] {
        // What `JSONValue.object([...]).serialized()` writes, without building the
        // dictionary: the attributes in sorted order.
        var output: [UInt8] = []
        output.reserveCapacity(512)
        output.append(UInt8(ascii: "{"))
        func attribute(_ name: String, _ write: (inout [UInt8]) -> Void) {
            if output.count > 1 { output.append(UInt8(ascii: ",")) }
            JSONValue.writeString(name, to: &output)
            output.append(UInt8(ascii: ":"))
            write(&output)
        }
        func attribute(_ name: String, _ text: String?) {
            guard let text else { return }
            attribute(name) { JSONValue.writeString(text, to: &$0) }
        }
        if let data { attribute("data") { data.write(to: &$0) } }
        attribute("datacontenttype", dataContentType)
        attribute("id", id)
        attribute("source", source)
        attribute("specversion", Self.specVersion)
        attribute("subject", subject)
        attribute("time", time.map(RFC3339.format))
        attribute("type", type)
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// Parses a structured-mode event, checking the CloudEvents required attributes.
    public init(jsonBytes: [UInt8]) throws(EventError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: jsonBytes)
        } catch {
            throw EventError(.malformed, "not valid JSON (\(error))")
        }
        try self.init(json: value)
    }

    /// What a publisher hands Warren (`warren publish --ndjson`, `POST /v1/events`): a
    /// CloudEvent (it has `specversion`), or the short form `{"type", "data"}` with
    /// optional `id`, `source` (else `defaultSource`) and `subject`.
    public init(input value: JSONValue, defaultSource: String) throws(EventError) {
        guard case .object = value else { throw EventError(.malformed, "an event must be a JSON object") }
        if value["specversion"] != nil {
            try self.init(json: value)
            return
        }
        guard let type = value["type"]?.stringValue else { throw EventError(.invalidAttribute, field: "type", "required string attribute is missing") }
        self.init(type: type, source: value["source"]?.stringValue ?? defaultSource, data: value["data"], subject: value["subject"]?.stringValue)
        if let id = value["id"]?.stringValue { self.id = id }
    }

    /// A structured-mode event already parsed as JSON.
    public init(json value: JSONValue) throws(EventError) {
        guard case .object(let object) = value else { throw EventError(.malformed, "a CloudEvent must be a JSON object") }
        func required(_ key: String) throws(EventError) -> String {
            guard let text = object[key]?.stringValue, !text.isEmpty else {
                throw EventError(.invalidAttribute, field: key, "required string attribute is missing or empty")
            }
            return text
        }
        func optional(_ key: String) throws(EventError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw EventError(.invalidAttribute, field: key, "must be a string") }
            return text
        }
        let version = try required("specversion")
        guard version == Self.specVersion else {
            throw EventError(.invalidAttribute, field: "specversion", "must be \"1.0\", got \"\(version)\"")
        }
        id = try required("id")
        source = try required("source")
        type = try required("type")
        subject = try optional("subject")
        dataContentType = try optional("datacontenttype")
        if let text = try optional("time") {
            guard let date = RFC3339.parse(text) else { throw EventError(.invalidAttribute, field: "time", "must be an RFC 3339 timestamp") }
            time = date
        } else {
            time = nil
        }
        data = object["data"]
    }
}

/// RFC 3339 timestamps: written in UTC with milliseconds, read with or without fractions
/// and with any offset.
public enum RFC3339 {
    /// `2024-05-01T12:00:00.123Z`: UTC, milliseconds, proleptic Gregorian like `parse`,
    /// so every time `parse` reads comes back as the same instant (Foundation's format style
    /// switches to the Julian calendar before 1582 and moved such dates by days).
    public static func format(_ date: Date) -> String {
        let instant = date.timeIntervalSince1970
        guard instant.isFinite, abs(instant) < 1e12 else { return "\(date)" }
        // Whole seconds and the fraction (exact in binary); the milliseconds are cut with a
        // tolerance of the Double's own precision, so `.123` read by `parse` (stored as
        // .12299…) prints as `.123` again, in year 9999 too.
        let whole = instant.rounded(.down)
        let tolerance = max(1e-3, 2 * instant.ulp * 1000)
        let millis = min(999, Int(((instant - whole) * 1000 + tolerance).rounded(.down)))
        func floorDivision(_ a: Int, _ b: Int) -> (Int, Int) {
            let quotient = a >= 0 ? a / b : -((-a + b - 1) / b)
            return (quotient, a - quotient * b)
        }
        let (days, time) = floorDivision(Int(whole), 86_400)
        let (year, month, day) = civil(daysSince1970: days)
        guard (0...9999).contains(year) else { return "\(date)" }
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(time / 3600, 2)):\(pad(time / 60 % 60, 2)):\(pad(time % 60, 2))."
            + "\(pad(millis, 3))Z"
    }

    /// `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123456+02:00`: read byte by byte (every
    /// consumed event has a time, and Foundation's format styles cost more than the rest of
    /// decoding it). Nil for anything else, including impossible dates like February 30.
    public static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<digits {
                let digit = Int(bytes[index]) - 48
                guard digit >= 0, digit <= 9 else { return nil }
                value = value * 10 + digit
                index += 1
            }
            return value
        }
        func expect(_ allowed: UInt8...) -> Bool {
            guard index < bytes.count, allowed.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect(UInt8(ascii: "-")), let month = number(2), expect(UInt8(ascii: "-")), let day = number(2),
            expect(UInt8(ascii: "T"), UInt8(ascii: "t")), let hour = number(2), expect(UInt8(ascii: ":")), let minute = number(2),
            expect(UInt8(ascii: ":")), let second = number(2),
            (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour <= 23, minute <= 59, second <= 59
        else { return nil }
        var nanoseconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 100_000_000, digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                nanoseconds += Int(bytes[index] - 48) * scale
                scale /= 10
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
        }
        var offset = 0
        if expect(UInt8(ascii: "Z"), UInt8(ascii: "z")) {
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            // `+02:00`, and `+0200` as Foundation (and so earlier Warren) also accepts.
            guard let hours = number(2) else { return nil }
            _ = expect(UInt8(ascii: ":"))
            guard let minutes = number(2), hours <= 23, minutes <= 59 else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let seconds = daysSince1970(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        // An offset can push the instant out of the years 0000-9999 that `format` writes.
        guard (-62_167_219_200...253_402_300_799).contains(seconds) else { return nil }
        // From the reference date, as Foundation counts: the same Double for the same text.
        return Date(timeIntervalSinceReferenceDate: Double(seconds - 978_307_200) + Double(nanoseconds) / 1e9)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's civil_from_days).
    private static func civil(daysSince1970 days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    private static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
