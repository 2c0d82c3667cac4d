import AMQP
import Messaging
import Topology
import WarrenCore

/// What `scripts/fuzz` feeds with generated input: each parser that takes bytes from
/// outside (the wire, a file, the environment). A target returns nil when the input was
/// handled as it should be (parsed, or refused with an error), or what went wrong: a value
/// that does not survive its own round trip. A crash is a failure too. The fuzzer traps on
/// a failure; `FuzzTests` replays the committed corpus (`Fuzz/corpus/TARGET`) through them.
public struct FuzzTarget: Sendable {
    public let name: String
    public let run: @Sendable ([UInt8]) -> String?

    public init(name: String, run: @escaping @Sendable ([UInt8]) -> String?) {
        self.name = name
        self.run = run
    }
}

public enum FuzzTargets {
    /// Every target; the CloudEvent target validates against `catalog`.
    public static func all(catalog: EventCatalog) -> [FuzzTarget] {
        [json, cloudEvent(catalog), topology, amqpURL, fieldTable]
    }

    /// `JSONValue(parsing:)`: what parses serializes to JSON that parses to the same bytes.
    public static let json = FuzzTarget(name: "json") { bytes in
        guard let value = try? JSONValue(parsing: bytes) else { return nil }
        let first = value.serialized()
        guard let again = try? JSONValue(parsing: first) else { return "its own serialization does not parse: \(String(decoding: first, as: UTF8.self))" }
        return again.serialized() == first ? nil : "serializing is not stable"
    }

    /// A CloudEvent off the wire: decoded, validated by the catalog and for AMQP, mapped to
    /// an AMQP message and decoded back unchanged.
    public static func cloudEvent(_ catalog: EventCatalog) -> FuzzTarget {
        FuzzTarget(name: "cloudevent") { bytes in
            guard let event = try? CloudEvent(jsonBytes: bytes) else { return nil }
            _ = try? catalog.validate(event)
            guard (try? event.validateForAMQP()) != nil else { return nil }
            let message = event.amqpMessage()
            guard let back = try? CloudEvent(jsonBytes: message.body) else { return "its own encoding does not decode" }
            return back.jsonBytes() == message.body ? nil : "encoding is not stable"
        }
    }

    /// `topology.yaml`: parsed (or refused) and, when valid, planned into declarations.
    public static let topology = FuzzTarget(name: "topology") { bytes in
        guard let topology = try? Topology.parse(String(decoding: bytes, as: UTF8.self)) else { return nil }
        _ = topology.declarations
        return nil
    }

    /// `WARREN_AMQP_URL` (a comma-separated list). A refused URL is never echoed with its
    /// credentials: no `:password@` of any URL in the list appears in the error.
    public static let amqpURL = FuzzTarget(name: "amqp-url") { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try AMQPConfiguration(urls: text)
            return nil
        } catch {
            let message = "\(error)"
            for part in text.split(separator: ",") {
                // An authority as a user would write one: no '/' in the user information
                // and one '@' (anything else is too mangled to hold a credential).
                guard let scheme = part.range(of: "://"), let at = part.lastIndex(of: "@"), scheme.upperBound < at,
                      let colon = part[scheme.upperBound..<at].firstIndex(of: ":"),
                      !part[scheme.upperBound..<at].contains("/"), !part[scheme.upperBound..<at].contains("@")
                else { continue }
                let credential = part[colon...at]
                if credential.count >= 4 && message.contains(credential) { return "the error repeats '\(credential)': \(message)" }
            }
            return nil
        }
    }

    /// An encoded field table (message headers): decoded depth-limited and encoded again.
    /// What was decoded either re-encodes to bytes that decode to the same bytes, or is
    /// refused as a publish would refuse it (a name that grew past 255 bytes when invalid
    /// UTF-8 was replaced), never written as a corrupt frame.
    public static let fieldTable = FuzzTarget(name: "field-table") { bytes in
        guard let (table, tooDeep) = FieldTableCodec.decode(bytes), !tooDeep else { return nil }
        let encoded: [UInt8]?
        do { encoded = try FieldTableCodec.encode(table) } catch { return nil }
        guard let first = encoded else { return "a decoded table does not encode" }
        guard let (again, _) = FieldTableCodec.decode(first) else { return "its own encoding does not decode" }
        return (try? FieldTableCodec.encode(again)) == first ? nil : "encoding is not stable"
    }
}
