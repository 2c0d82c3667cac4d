import AMQP
import Logging

/// Declares a topology over AMQP. Declaring is idempotent, so `apply` simply declares
/// everything; an object that exists with other settings makes the broker refuse (406),
/// and is reported and left alone, never deleted, while the rest is still declared.
public struct TopologyApplier: Sendable {
    public let channel: AMQPChannel
    public let logger: Logger

    public init(channel: AMQPChannel, logger: Logger) {
        self.channel = channel
        self.logger = logger
    }

    /// Declares the exchange, the queues and the bindings, and removes the bindings of
    /// disabled consumers. Returns one `inequivalent` error
    /// per live object that differs from the file; throws for anything else (permissions,
    /// a missing vhost, a lost connection).
    public func apply(_ declarations: TopologyDeclarations) async throws -> [TopologyError] {
        var conflicts: [TopologyError] = []
        let exchange = declarations.exchange
        do {
            try await channel.declareExchange(exchange.name, type: exchange.type, durable: true)
        } catch let error as AMQPError where error.replyCode == 406 {
            conflicts.append(Self.inequivalence(error, kind: "exchange", name: exchange.name) { argument in
                argument == "type" ? exchange.type : argument == "durable" ? "true" : nil
            })
        }
        for queue in declarations.queues {
            do {
                try await channel.declareQueue(queue.name, durable: true, arguments: queue.arguments.fieldTable)
            } catch let error as AMQPError where error.replyCode == 406 {
                conflicts.append(Self.inequivalence(error, kind: "queue", name: queue.name) { argument in
                    argument == "durable" ? "true" : queue.arguments[argument]?.description
                })
            }
        }
        // A conflicting queue still gets its bindings: they change what it receives, not
        // the queue, and are what the file asks for.
        for binding in declarations.bindings {
            try await channel.bindQueue(binding.queue, to: binding.exchange, routingKey: binding.routingKey, arguments: binding.arguments.fieldTable)
        }
        // A disabled consumer's patterns (unbinding what is not bound is a no-op); other
        // live bindings to its queue need the management API's list: see the plan's
        // `bindingsOfDisabledConsumers`.
        try await removeBindings(declarations.unbound)
        logger.debug("topology.applied", metadata: [
            "topology.queues": "\(declarations.queues.count)", "topology.bindings": "\(declarations.bindings.count)",
            "topology.conflicts": "\(conflicts.count)",
        ])
        return conflicts
    }

    /// Removes bindings (what `apply --prune` found the file no longer has, or what binds a
    /// disabled consumer's queue).
    public func removeBindings(_ bindings: [BindingDeclaration]) async throws {
        for binding in bindings {
            try await channel.unbindQueue(binding.queue, from: binding.exchange, routingKey: binding.routingKey, arguments: binding.arguments.fieldTable)
        }
    }

    /// Turns the broker's 406 into a sentence that names the differing argument, e.g. from
    /// "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/':
    /// received '20' but current is '10'". Falls back to the broker's whole text.
    static func inequivalence(_ error: AMQPError, kind: String, name: String, fileValue: (String) -> String?) -> TopologyError {
        let text = error.replyText ?? error.description
        let advice = "not changed — delete or migrate it by hand"
        guard let match = text.firstMatch(of: /inequivalent arg '(?<argument>[^']+)' for \w+ '.*' in vhost '.*': received .* but current is (?<current>.*)$/) else {
            return TopologyError(.inequivalent, "\(kind) '\(name)': \(text); \(advice)")
        }
        let argument = String(match.output.argument)
        let live = liveValue(String(match.output.current)) ?? "not set"
        let file = fileValue(argument) ?? "not set"
        return TopologyError(
            .inequivalent,
            "\(kind) '\(name)': argument '\(argument)' differs from the live \(kind) (live \(live), file \(file)); \(advice)")
    }

    /// `'10'`, `the value 'quorum' of type 'longstr'` or `none` (nil).
    private static func liveValue(_ text: String) -> String? {
        if text == "none" { return nil }
        if let match = text.firstMatch(of: /^the value '(?<value>.*)' of type '[^']*'$/) { return String(match.output.value) }
        if text == "''" { return "\"\"" }
        if text.count >= 2, text.hasPrefix("'"), text.hasSuffix("'") { return String(text.dropFirst().dropLast()) }
        return text
    }
}
