import Yams

/// Reads topology YAML through Yams' node tree, which keeps each key's line, so that a
/// broken file gets one error naming the line and the key. Unknown keys are errors: a
/// typo must not silently fall back to a default.
struct TopologyParser {
    let file: String

    private static let settingKeys = ["max_attempts", "retry_delays", "prefetch", "batch_size", "batch_wait", "delivery_limit"]
    /// What only a consumer (not `defaults`) may set.
    static let consumerKeys = ["bindings", "enabled"] + settingKeys
    private static let durationHint = "use 500ms, 5s, 2m, 1h"

    func parse(_ yaml: String) throws(TopologyError) -> Topology {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw syntaxError(error)
        } catch {
            throw TopologyError(.invalidFile, file: file, "invalid YAML: \(error)")
        }
        guard let root, !isNull(root) else {
            throw TopologyError(.invalidFile, file: file, "the file is empty (expected exchange, defaults and consumers)")
        }
        let top = try fields(of: root, at: nil, allowed: ["exchange", "defaults", "consumers"])

        var exchange = ExchangeSpec()
        if let field = top["exchange"] { exchange = try parseExchange(field.value, at: "exchange") }
        var defaults = Settings()
        if let node = top["defaults"] { try defaults.read(node.value, at: "defaults", self) }

        guard let consumersField = top["consumers"] else {
            throw TopologyError(.invalidFile, file: file, line: 1, key: "consumers", "missing (list at least one consumer)")
        }
        let consumerFields = try fields(of: consumersField.value, at: "consumers", allowed: nil)
        guard !consumerFields.isEmpty else {
            throw error(consumersField.value, "consumers", "no consumers (list at least one)")
        }
        var consumers: [ConsumerSpec] = []
        for field in consumerFields.ordered {
            consumers.append(try parseConsumer(field, defaults: defaults, exchange: exchange))
        }
        return Topology(exchange: exchange, consumers: consumers)
    }

    // MARK: Sections

    private func parseExchange(_ node: Node, at path: String) throws(TopologyError) -> ExchangeSpec {
        let map = try fields(of: node, at: path, allowed: ["name", "type"])
        var spec = ExchangeSpec()
        if let name = map["name"] {
            spec.name = try string(name.value, at: "\(path).name")
            guard !spec.name.hasPrefix("amq.") else {
                throw error(name.value, "\(path).name", "'amq.' names are reserved by RabbitMQ")
            }
        }
        if let type = map["type"] {
            spec.type = try string(type.value, at: "\(path).type")
            guard ["topic", "direct", "fanout"].contains(spec.type) else {
                throw error(type.value, "\(path).type", "unsupported exchange type '\(spec.type)' (use topic, direct or fanout)")
            }
        }
        return spec
    }

    private func parseConsumer(_ field: Field, defaults: Settings, exchange: ExchangeSpec) throws(TopologyError) -> ConsumerSpec {
        let name = field.name
        let path = "consumers.\(name)"
        let validName = name.first.map { $0.isLetter || $0.isNumber } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        guard validName else {
            throw error(field.keyNode, path, "invalid consumer name (letters, digits, '.', '_', '-'; starting with a letter or digit)")
        }
        guard !name.hasSuffix(".dlq"), !name.contains(".retry.") else {
            throw error(field.keyNode, path, "a consumer name may not end in '.dlq' or contain '.retry.' (Warren names its own queues so)")
        }
        let map = try fields(of: field.value, at: path, allowed: Self.consumerKeys)
        var settings = defaults
        try settings.read(field.value, at: path, self)

        guard let bindingsField = map["bindings"] else {
            throw error(field.keyNode, "\(path).bindings", "missing (list the routing-key patterns this consumer receives)")
        }
        let bindingNodes = try sequence(bindingsField.value, at: "\(path).bindings")
        guard !bindingNodes.isEmpty else { throw error(bindingsField.value, "\(path).bindings", "empty (list at least one pattern)") }
        var bindings: [String] = []
        for (index, node) in bindingNodes.enumerated() {
            let key = "\(path).bindings[\(index)]"
            let pattern = try string(node, at: key)
            if exchange.type == "topic", let problem = Self.patternProblem(pattern) {
                throw error(node, key, "invalid pattern '\(pattern)': \(problem)")
            }
            guard !bindings.contains(pattern) else { throw error(node, key, "duplicate pattern '\(pattern)'") }
            bindings.append(pattern)
        }

        var enabled = true
        if let field = map["enabled"] { enabled = try bool(field.value, at: "\(path).enabled") }

        if settings.maxAttempts.value > 1, settings.retryDelays.value.isEmpty {
            throw error(at: settings.retryDelays.line, "\(settings.retryDelays.path)", "empty, but max_attempts is \(settings.maxAttempts.value) (give at least one delay)")
        }
        let (batchSize, prefetch) = (settings.batchSize, settings.prefetch)
        if batchSize.value > prefetch.value {
            // Blame the key the user wrote last: a consumer's own over the defaults'.
            let blamePrefetch = batchSize.line == nil || (prefetch.path.hasPrefix("consumers.") && !batchSize.path.hasPrefix("consumers."))
            throw blamePrefetch
                ? error(at: prefetch.line, prefetch.path, "\(prefetch.value) is less than batch_size \(batchSize.value) (a batch could never fill)")
                : error(at: batchSize.line, batchSize.path, "\(batchSize.value) exceeds prefetch \(prefetch.value) (a batch could never fill)")
        }
        return ConsumerSpec(
            name: name, bindings: bindings, maxAttempts: settings.maxAttempts.value, retryDelays: settings.retryDelays.value,
            prefetch: settings.prefetch.value, batchSize: settings.batchSize.value, batchWait: settings.batchWait.value,
            deliveryLimit: settings.deliveryLimit.value, enabled: enabled)
    }

    /// Why `pattern` is not a topic binding key: words are separated by single dots, and
    /// `*` and `#` only match as whole words.
    private static func patternProblem(_ pattern: String) -> String? {
        for word in pattern.split(separator: ".", omittingEmptySubsequences: false) {
            if word.isEmpty { return "empty word (check the dots)" }
            if word != "*", word != "#", word.contains(where: { $0 == "*" || $0 == "#" }) {
                return "'*' and '#' must be whole words, as in 'user.*' or 'payment.#'"
            }
        }
        return nil
    }

    // MARK: Settings shared by `defaults` and each consumer

    /// A value and where it was set, so that a check involving two keys can point at one.
    struct Located<Value> {
        var value: Value
        var line: Int? = nil
        var path: String
    }

    struct Settings {
        var maxAttempts = Located(value: 5, path: "defaults.max_attempts")
        var retryDelays = Located(value: [Duration.seconds(5), .seconds(30), .seconds(120), .seconds(600)], path: "defaults.retry_delays")
        var prefetch = Located(value: 50, path: "defaults.prefetch")
        var batchSize = Located(value: 50, path: "defaults.batch_size")
        var batchWait = Located(value: Duration.zero, path: "defaults.batch_wait")
        var deliveryLimit = Located(value: 20, path: "defaults.delivery_limit")

        /// Overrides the settings `node` (a `defaults` or consumer mapping) sets.
        mutating func read(_ node: Node, at path: String, _ parser: TopologyParser) throws(TopologyError) {
            let allowed = path == "defaults" ? TopologyParser.settingKeys : TopologyParser.consumerKeys
            let map = try parser.fields(of: node, at: path, allowed: allowed)
            func set<T>(_ setting: inout Located<T>, _ key: String, _ read: (Node, String) throws(TopologyError) -> T) throws(TopologyError) {
                guard let field = map[key] else { return }
                let keyPath = "\(path).\(key)"
                setting = Located(value: try read(field.value, keyPath), line: field.value.mark?.line, path: keyPath)
            }
            try set(&maxAttempts, "max_attempts") { node, key throws(TopologyError) in try parser.int(node, at: key, in: 1...1_000) }
            try set(&retryDelays, "retry_delays") { node, key throws(TopologyError) in
                var delays: [Duration] = []
                for (index, item) in try parser.sequence(node, at: key).enumerated() {
                    delays.append(try parser.duration(item, at: "\(key)[\(index)]", minimum: .milliseconds(1)))
                }
                return delays
            }
            try set(&prefetch, "prefetch") { node, key throws(TopologyError) in try parser.int(node, at: key, in: 1...65_535) }
            try set(&batchSize, "batch_size") { node, key throws(TopologyError) in try parser.int(node, at: key, in: 1...65_535) }
            try set(&batchWait, "batch_wait") { node, key throws(TopologyError) in try parser.duration(node, at: key, minimum: .zero) }
            try set(&deliveryLimit, "delivery_limit") { node, key throws(TopologyError) in try parser.int(node, at: key, in: 1...1_000_000) }
        }
    }

    // MARK: Typed reads, each failing with the line and key

    struct Field {
        var name: String
        var keyNode: Node
        var value: Node
    }

    struct Fields {
        var ordered: [Field]
        subscript(name: String) -> Field? { ordered.first { $0.name == name } }
        var isEmpty: Bool { ordered.isEmpty }
    }

    /// The entries of a mapping (null counts as empty); with `allowed`, any other key is an error.
    func fields(of node: Node, at path: String?, allowed: [String]?) throws(TopologyError) -> Fields {
        if isNull(node) { return Fields(ordered: []) }
        guard let mapping = node.mapping else {
            let expected = allowed.map { "a mapping with \($0.joined(separator: ", "))" } ?? "a mapping"
            throw error(node, path, "expected \(expected), found \(describe(node))")
        }
        var result: [Field] = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw error(key, path, "keys must be plain strings") }
            let keyPath = path.map { "\($0).\(name)" } ?? name
            if let allowed, !allowed.contains(name) {
                throw error(key, keyPath, "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            }
            result.append(Field(name: name, keyNode: key, value: value))
        }
        return Fields(ordered: result)
    }

    func sequence(_ node: Node, at path: String) throws(TopologyError) -> [Node] {
        if isNull(node) { return [] }
        guard let sequence = node.sequence else { throw error(node, path, "expected a list, found \(describe(node))") }
        return Array(sequence)
    }

    func string(_ node: Node, at path: String) throws(TopologyError) -> String {
        guard let scalar = node.scalar, has(node, .str), !scalar.string.isEmpty else {
            throw error(node, path, "expected a non-empty string, found \(describe(node))")
        }
        return scalar.string
    }

    func int(_ node: Node, at path: String, in range: ClosedRange<Int>) throws(TopologyError) -> Int {
        guard has(node, .int), let value = node.int else {
            throw error(node, path, "expected a whole number, found \(describe(node))")
        }
        guard range.contains(value) else {
            throw error(node, path, "\(value) is out of range (\(range.lowerBound)...\(range.upperBound))")
        }
        return value
    }

    func bool(_ node: Node, at path: String) throws(TopologyError) -> Bool {
        guard has(node, .bool), let value = node.bool else {
            throw error(node, path, "expected true or false, found \(describe(node))")
        }
        return value
    }

    func duration(_ node: Node, at path: String, minimum: Duration) throws(TopologyError) -> Duration {
        guard let text = node.scalar?.string, let duration = DurationText.parse(text) else {
            let shown = node.scalar.map { "'\($0.string)'" } ?? describe(node)
            throw error(node, path, "invalid duration \(shown) (\(Self.durationHint))")
        }
        guard duration >= minimum else { throw error(node, path, "must be at least \(DurationText.format(minimum))") }
        return duration
    }

    private func isNull(_ node: Node) -> Bool { has(node, .null) }

    /// Whether YAML resolved `node` to `tag` (a quoted "5" is a string, not an int).
    private func has(_ node: Node, _ tag: Tag.Name) -> Bool { node.tag.rawValue == tag.rawValue }

    private func describe(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let scalar): isNull(node) ? "nothing" : "'\(scalar.string)'"
        case .alias: "an alias"
        }
    }

    private func error(_ node: Node, _ key: String?, _ message: String) -> TopologyError {
        error(at: node.mark?.line, key, message)
    }

    private func error(at line: Int?, _ key: String?, _ message: String) -> TopologyError {
        TopologyError(.invalidFile, file: file, line: line, key: key, message)
    }

    private func syntaxError(_ error: YamlError) -> TopologyError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let detail = context.map { " (\($0.text))" } ?? ""
            return TopologyError(.invalidFile, file: file, line: mark.line, "invalid YAML: \(problem)\(detail)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return TopologyError(.invalidFile, file: file, line: context.mark.line, "duplicate key \(keys) (this is its first occurrence)")
        case let .reader(problem, _, _, _):
            return TopologyError(.invalidFile, file: file, "invalid YAML: \(problem)")
        default:
            return TopologyError(.invalidFile, file: file, "invalid YAML: \(error)")
        }
    }
}
