import Foundation

/// RabbitMQ definitions JSON for a topology: what `rabbitmqctl import_definitions FILE`
/// (or `POST /api/definitions`) reads, for brokers that are provisioned from definitions
/// rather than by `warren topology apply`. Holds exchanges, queues and bindings only, all
/// in `vhost`, which must exist (users and permissions stay the operator's business).
public struct DefinitionsExport: Sendable, Encodable, Equatable {
    public var exchanges: [Exchange]
    public var queues: [Queue]
    public var bindings: [Binding]

    public struct Exchange: Sendable, Encodable, Equatable {
        public var name: String
        public var vhost: String
        public var type: String
        public var durable = true
        public var auto_delete = false
        public var `internal` = false
        public var arguments: [String: ArgumentValue] = [:]
    }

    public struct Queue: Sendable, Encodable, Equatable {
        public var name: String
        public var vhost: String
        public var durable = true
        public var auto_delete = false
        public var arguments: [String: ArgumentValue]
    }

    public struct Binding: Sendable, Encodable, Equatable {
        public var source: String
        public var vhost: String
        public var destination: String
        public var destination_type = "queue"
        public var routing_key: String
        public var arguments: [String: ArgumentValue]
    }

    public init(_ declarations: TopologyDeclarations, vhost: String = "/") {
        exchanges = [Exchange(name: declarations.exchange.name, vhost: vhost, type: declarations.exchange.type)]
        queues = declarations.queues.map { Queue(name: $0.name, vhost: vhost, arguments: $0.arguments) }
        bindings = declarations.bindings.map {
            Binding(source: $0.exchange, vhost: vhost, destination: $0.queue, routing_key: $0.routingKey, arguments: $0.arguments)
        }
    }

    /// Pretty-printed with sorted keys, so that exports diff well under version control.
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only strings, integers and booleans: encoding cannot fail.
        return try! encoder.encode(self)
    }
}
