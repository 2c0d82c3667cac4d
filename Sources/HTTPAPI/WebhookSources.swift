import Crypto
import Foundation
import HTTPTypes
import WarrenCore
import Yams

/// An inbound webhook source of `webhooks/sources.yaml`: `POST /webhooks/<name>`.
public struct WebhookSource: Sendable {
    public enum Scheme: String, Sendable, CaseIterable {
        /// Hex HMAC-SHA256 of the raw body in a header (`header`, default `X-Signature`).
        case xSignature = "x-signature"
        case standardWebhooks = "standard-webhooks"
    }

    public enum EventType: Sendable, Equatable {
        case fixed(String)
        /// Read from this top-level string field of the payload.
        case field(String)
    }

    public var name: String
    public var scheme: Scheme
    public var header: String
    /// The environment variable holding the secrets (comma-separated during rotation):
    /// the file names it, never holds a secret.
    public var secretsVariable: String
    public var eventType: EventType
    /// x-signature: the payload field that identifies a delivery, so a resent one is
    /// published once (without it, or when a payload lacks it, the body's SHA-256 does).
    /// Standard Webhooks always has `webhook-id`.
    public var idField: String?
    /// With `type_field`: the event types the payload may name (topic patterns); the
    /// sender must not choose Warren's own types.
    public var eventPatterns: [String] = []
}

/// `webhooks/sources.yaml` (`WARREN_WEBHOOK_SOURCES`). Errors name the line and the key;
/// unknown keys are errors.
public enum WebhookSources {
    public static let defaultPath = "webhooks/sources.yaml"
    public static let environmentVariable = "WARREN_WEBHOOK_SOURCES"

    public static func load(path: String) throws(HTTPAPIError) -> [WebhookSource] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HTTPAPIError(description: "\(path): cannot read the webhook sources file")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ yaml: String, file: String = defaultPath) throws(HTTPAPIError) -> [WebhookSource] {
        func fail(_ node: Node?, _ key: String, _ message: String) -> HTTPAPIError {
            HTTPAPIError(description: "\(file)\(node?.mark.map { ":\($0.line)" } ?? ""): \(key): \(message)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw HTTPAPIError(description: "\(file): invalid YAML: \(error)")
        }
        guard let root, let top = root.mapping else { return [] }
        for (key, _) in top where key.string != "sources" { throw fail(key, key.string ?? "?", "unknown key (expected: sources)") }
        guard let sourcesNode = top["sources"], sourcesNode.tag.rawValue != Tag.Name.null.rawValue else { return [] }
        guard let sources = sourcesNode.mapping else { throw fail(sourcesNode, "sources", "expected a mapping of source names") }
        var result: [WebhookSource] = []
        let allowed = ["scheme", "header", "secrets_env", "type", "type_field", "events", "id_field"]
        for (keyNode, node) in sources {
            let name = keyNode.string ?? ""
            let path = "sources.\(name)"
            guard name.range(of: #"^[a-z0-9][a-z0-9._-]*$"#, options: .regularExpression) != nil else {
                throw fail(keyNode, path, "invalid source name (lower-case letters, digits, '.', '_', '-')")
            }
            guard name != "stripe" else { throw fail(keyNode, path, "'stripe' is built in (STRIPE_WEBHOOK_SECRET)") }
            guard let fields = node.mapping else { throw fail(node, path, "expected a mapping") }
            for (key, _) in fields where !allowed.contains(key.string ?? "") {
                throw fail(key, "\(path).\(key.string ?? "?")", "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            }
            func text(_ key: String) throws(HTTPAPIError) -> String? {
                guard let value = fields[key] else { return nil }
                guard let string = value.scalar?.string, !string.isEmpty else { throw fail(value, "\(path).\(key)", "expected a non-empty string") }
                return string
            }
            guard let schemeText = try text("scheme") else { throw fail(node, "\(path).scheme", "missing (x-signature or standard-webhooks)") }
            guard let scheme = WebhookSource.Scheme(rawValue: schemeText) else {
                throw fail(fields["scheme"], "\(path).scheme", "unknown scheme '\(schemeText)' (x-signature or standard-webhooks)")
            }
            guard let variable = try text("secrets_env") else {
                throw fail(node, "\(path).secrets_env", "missing (the environment variable that holds the secret)")
            }
            let eventType: WebhookSource.EventType
            switch (try text("type"), try text("type_field")) {
            case (let fixed?, nil):
                guard EventCatalog.isValidPatternText(fixed), !fixed.contains("*"), !fixed.contains("#") else {
                    throw fail(fields["type"], "\(path).type", "'\(fixed)' is not an event type")
                }
                eventType = .fixed(fixed)
            case (nil, let field?): eventType = .field(field)
            default: throw fail(node, path, "give exactly one of type (fixed) or type_field (read from the payload)")
            }
            var patterns: [String] = []
            if let node = fields["events"] {
                guard let items = node.sequence, !items.isEmpty else { throw fail(node, "\(path).events", "expected a list of event-type patterns") }
                for item in items {
                    guard let pattern = item.scalar?.string, EventCatalog.isValidPatternText(pattern) else {
                        throw fail(item, "\(path).events", "'\(item.scalar?.string ?? "?")' is not an event-type pattern")
                    }
                    patterns.append(pattern)
                }
            }
            if case .field = eventType, patterns.isEmpty {
                throw fail(node, "\(path).events", "missing: with type_field, list the types the payload may name (e.g. [\"\(name).#\"])")
            }
            let header = try text("header")
            if header != nil, scheme != .xSignature { throw fail(fields["header"], "\(path).header", "only x-signature sources name their header") }
            if let header, HTTPField.Name(header) == nil { throw fail(fields["header"], "\(path).header", "'\(header)' is not a valid HTTP header name") }
            let idField = try text("id_field")
            if idField != nil, scheme != .xSignature { throw fail(fields["id_field"], "\(path).id_field", "standard-webhooks sources use webhook-id") }
            result.append(WebhookSource(
                name: name, scheme: scheme, header: header ?? "X-Signature", secretsVariable: variable, eventType: eventType, idField: idField,
                eventPatterns: patterns))
        }
        return result
    }
}

extension WebhookSource {
    /// The event for a verified payload: its type, the payload as data, and an id derived
    /// from the delivery's id when there is one (so a resent delivery is the same event).
    func event(payload: JSONValue, deliveryID: String?) throws(EventError) -> CloudEvent {
        let type: String
        switch eventType {
        case .fixed(let fixed): type = fixed
        case .field(let field):
            guard let value = payload[field]?.stringValue, !value.isEmpty else {
                throw EventError(.invalidAttribute, field: field, "the payload has no string field '\(field)' to take the event type from")
            }
            type = value
        }
        var event = CloudEvent(type: type, source: "/webhooks/\(name)", data: payload)
        if let deliveryID { event.id = WebhookSource.eventID(source: name, deliveryID: deliveryID) }
        return event
    }

    /// Whether this source may publish `type`: its fixed type, or one its `events` patterns
    /// allow when the payload names the type.
    func mayPublish(_ type: String) -> Bool {
        switch eventType {
        case .fixed(let fixed): type == fixed
        case .field: eventPatterns.contains { EventCatalog.matches(pattern: $0, type: type) }
        }
    }

    /// `<source>:<delivery id>`: ':' is in no source name, so two sources never make the
    /// same id, and `/v1/events` refuses ids in this form for a webhook source.
    static func eventID(source: String, deliveryID: String) -> String { "\(source):\(deliveryID)" }

    /// The delivery id of an x-signature payload: its `id_field` when configured and
    /// present, else `sha256:<hex digest of the raw body>`. The scheme signs no timestamp
    /// and no id, so a captured request could otherwise be replayed for ever: with the
    /// digest, the same body is one delivery (published once, then answered as a
    /// duplicate), and a changed body fails the signature.
    func deliveryID(in payload: JSONValue, body: [UInt8]) -> String {
        if let idField {
            switch payload[idField] {
            case .string(let id)? where !id.isEmpty: return id
            case .integer(let id)?: return String(id)
            default: break
            }
        }
        return "sha256:" + Hex.encode(SHA256.hash(data: body))
    }
}
