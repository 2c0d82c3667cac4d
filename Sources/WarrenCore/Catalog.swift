import Foundation

/// The event types Warren knows: one JSON Schema per type for the event's `data`, plus
/// open type patterns whose events pass without a schema.
///
/// On disk, a directory (default `events/`, `WARREN_CATALOG` in the CLI) holding
/// `<type>.schema.json` per type and `catalog.json`: `{"open": ["test.*", "audit.#"]}`, with
/// patterns in AMQP topic syntax. Other files are ignored.
public struct EventCatalog: Sendable {
    public static let defaultDirectory = "events"
    /// The environment variable the CLI reads the catalog directory from.
    public static let environmentVariable = "WARREN_CATALOG"
    static let schemaSuffix = ".schema.json"
    static let indexFile = "catalog.json"

    /// Patterns (`test.*`, `audit.#`) of types accepted without a schema.
    public let openPatterns: [String]
    private let schemas: [String: JSONSchema]

    public init(schemas: [String: JSONSchema], openPatterns: [String] = []) {
        self.schemas = schemas
        self.openPatterns = openPatterns
    }

    /// Loads every `<type>.schema.json` and `catalog.json` (optional: no open patterns)
    /// in `directory`. Errors name the file and, for schemas, the place in it.
    public init(directory: String = EventCatalog.defaultDirectory) throws(CatalogError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw CatalogError(.unreadable, file: directory, "cannot list the event catalog directory")
        }
        let base = URL(fileURLWithPath: directory, isDirectory: true)
        var schemas: [String: JSONSchema] = [:]
        for name in names.sorted() where name.hasSuffix(Self.schemaSuffix) {
            let path = base.appendingPathComponent(name).path
            let type = String(name.dropLast(Self.schemaSuffix.count))
            guard Self.isValidType(type) else {
                throw CatalogError(
                    .invalidCatalog, file: path, "\"\(type)\" is not an event type: use dot-separated words without * or #")
            }
            schemas[type] = try JSONSchema(contentsOfFile: path)
        }
        let index = base.appendingPathComponent(Self.indexFile).path
        let openPatterns = FileManager.default.fileExists(atPath: index) ? try Self.openPatterns(inFile: index) : []
        self.init(schemas: schemas, openPatterns: openPatterns)
    }

    /// The types that have a schema, sorted.
    public var types: [String] { schemas.keys.sorted() }

    public func schema(for type: String) -> JSONSchema? { schemas[type] }

    /// Whether events of `type` pass without a schema.
    public func isOpen(_ type: String) -> Bool {
        openPatterns.contains { Self.matches(pattern: $0, type: type) }
    }

    /// Checks that the catalog knows `event.type` and that `event.data` fits its schema
    /// (absent data is checked as `null`). All violations are reported in one error: the
    /// first one's `field`, and a message joining them with "; ".
    public func validate(_ event: CloudEvent) throws(EventError) {
        guard let schema = schemas[event.type] else {
            if isOpen(event.type) { return }
            var known = "known types: " + (types.isEmpty ? "none" : types.joined(separator: ", "))
            if !openPatterns.isEmpty { known += "; open patterns: " + openPatterns.joined(separator: ", ") }
            throw EventError(.unknownType, field: "type", "unknown event type \"\(event.type)\" (\(known))")
        }
        let violations = schema.validate(event.data ?? .null, at: "data")
        guard var error = violations.first else { return }
        if violations.count > 1 {
            error.message = ([error.message] + violations.dropFirst().map(\.description)).joined(separator: "; ")
        }
        throw error
    }

    // MARK: catalog.json

    private static func openPatterns(inFile path: String) throws(CatalogError) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CatalogError(.unreadable, file: path, "cannot read file")
        }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: Array(data))
        } catch {
            throw CatalogError(.invalidJSON, file: path, "not valid JSON (\(error))")
        }
        guard case .object(let object) = json else {
            throw CatalogError(.invalidCatalog, file: path, "must be an object like {\"open\": [\"test.*\"]}")
        }
        // A misspelt key would silently leave every pattern closed.
        if let unknown = object.keys.sorted().first(where: { $0 != "open" && !$0.hasPrefix("$") }) {
            throw CatalogError(.invalidCatalog, file: path, location: "#/\(unknown)", "unknown key (expected \"open\")")
        }
        guard let open = object["open"] else { return [] }
        guard case .array(let values) = open else {
            throw CatalogError(.invalidCatalog, file: path, location: "#/open", "must be an array of type patterns")
        }
        return try values.enumerated().map { (entry) throws(CatalogError) in
            guard let pattern = entry.element.stringValue, isValidPattern(pattern) else {
                throw CatalogError(
                    .invalidCatalog, file: path, location: "#/open/\(entry.offset)",
                    "\(entry.element.compactJSON) is not a topic pattern: dot-separated words, * or #")
            }
            return pattern
        }
    }
}
