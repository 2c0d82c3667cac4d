import AMQP

/// What a topology asks of the broker: one durable exchange, the queues with their exact
/// arguments, and the bindings. `plan`, `apply` and `export` all start from this, so they
/// cannot disagree about what the file means.
public struct TopologyDeclarations: Sendable, Equatable {
    public var exchange: ExchangeDeclaration
    public var queues: [QueueDeclaration]
    public var bindings: [BindingDeclaration]
    /// The file's bindings of disabled consumers (`enabled: false`): `apply` removes them,
    /// and `plan` shows any live binding to such a queue as one that `apply` removes.
    public var unbound: [BindingDeclaration]

    public init(exchange: ExchangeDeclaration, queues: [QueueDeclaration], bindings: [BindingDeclaration], unbound: [BindingDeclaration] = []) {
        self.exchange = exchange
        self.queues = queues
        self.bindings = bindings
        self.unbound = unbound
    }

    /// The main queues of disabled consumers.
    public var disabledQueues: Set<String> { Set(unbound.map(\.queue)) }
}

public struct ExchangeDeclaration: Sendable, Hashable {
    public var name: String
    public var type: String

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// A durable, non-exclusive queue and the arguments it is declared with.
public struct QueueDeclaration: Sendable, Hashable {
    public var name: String
    public var arguments: [String: ArgumentValue]

    public init(name: String, arguments: [String: ArgumentValue]) {
        self.name = name
        self.arguments = arguments
    }

    /// `quorum` or `classic`, from `x-queue-type`.
    public var type: String { arguments["x-queue-type"]?.description ?? "classic" }
}

public struct BindingDeclaration: Sendable, Hashable, Comparable {
    public var exchange: String
    public var queue: String
    public var routingKey: String
    /// Only live bindings made by hand have arguments; Warren's never do.
    public var arguments: [String: ArgumentValue]

    public init(exchange: String, queue: String, routingKey: String, arguments: [String: ArgumentValue] = [:]) {
        self.exchange = exchange
        self.queue = queue
        self.routingKey = routingKey
        self.arguments = arguments
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.exchange, lhs.queue, lhs.routingKey) < (rhs.exchange, rhs.queue, rhs.routingKey)
    }
}

/// A queue or binding argument: the few types topology arguments use, comparable between
/// the file, the management API's JSON and AMQP field tables.
public enum ArgumentValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case bool(Bool)

    public var description: String {
        switch self {
        case .string(let text): text.isEmpty ? "\"\"" : text
        case .int(let number): String(number)
        case .bool(let flag): String(flag)
        }
    }

    /// The value in an AMQP field table (integers as signed 64-bit, which RabbitMQ accepts
    /// for every numeric argument).
    public var fieldValue: AMQPFieldValue {
        switch self {
        case .string(let text): .string(text)
        case .int(let number): .int64(number)
        case .bool(let flag): .bool(flag)
        }
    }
}

extension ArgumentValue: Codable {
    /// Lenient: a queue made by hand may carry other types (floats, lists); they only need
    /// to compare and print, so they become their JSON text rather than failing the plan.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Int64.self) {
            self = .int(number)
        } else if let number = try? container.decode(Double.self) {
            self = .string(String(number))
        } else {
            self = .string("(unsupported value)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .int(let number): try container.encode(number)
        case .bool(let flag): try container.encode(flag)
        }
    }
}

extension [String: ArgumentValue] {
    /// The arguments as `declareQueue`/`bindQueue` take them.
    public var fieldTable: AMQPTable { mapValues(\.fieldValue) }

    /// `x-delivery-limit=20, x-overflow=reject-publish`, in key order.
    var summary: String { keys.sorted().map { "\($0)=\(self[$0]!)" }.joined(separator: ", ") }
}

extension Topology {
    /// The broker objects this topology needs. Per consumer, in declaration order: the
    /// dead-letter queue, the delay tiers, then the main queue (targets before sources).
    ///
    /// A disabled consumer's queues are declared (its DLQ stays browsable, and enabling it
    /// later needs only its bindings) but its main queue is bound to nothing.
    ///
    /// Every queue is a quorum queue. Dead-lettering is `at-least-once` (the source keeps
    /// a message until the target queue confirms it), which RabbitMQ only enables together
    /// with `x-overflow: reject-publish`. Quorum queues honour `x-message-ttl` since 3.10,
    /// and expired messages are dead-lettered from the head of the queue; as each tier has
    /// one TTL, the head is always the next to expire (checked against 3.10.8).
    public var declarations: TopologyDeclarations {
        var queues: [QueueDeclaration] = []
        var bindings: [BindingDeclaration] = []
        var unbound: [BindingDeclaration] = []
        let deadLettering: [String: ArgumentValue] = [
            "x-queue-type": .string("quorum"),
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-strategy": .string("at-least-once"),
            "x-overflow": .string("reject-publish"),
        ]
        for consumer in consumers {
            queues.append(QueueDeclaration(name: consumer.deadLetterQueueName, arguments: ["x-queue-type": .string("quorum")]))
            for (index, delay) in consumer.retryDelays.enumerated() {
                var arguments = deadLettering
                arguments["x-message-ttl"] = .int(DurationText.milliseconds(delay))
                arguments["x-dead-letter-routing-key"] = .string(consumer.queueName)
                queues.append(QueueDeclaration(name: consumer.retryQueueName(tier: index + 1), arguments: arguments))
            }
            var arguments = deadLettering
            arguments["x-delivery-limit"] = .int(Int64(consumer.deliveryLimit))
            arguments["x-dead-letter-routing-key"] = .string(consumer.deadLetterQueueName)
            queues.append(QueueDeclaration(name: consumer.queueName, arguments: arguments))
            for pattern in consumer.bindings {
                let binding = BindingDeclaration(exchange: exchange.name, queue: consumer.queueName, routingKey: pattern)
                if consumer.enabled { bindings.append(binding) } else { unbound.append(binding) }
            }
        }
        return TopologyDeclarations(
            exchange: ExchangeDeclaration(name: exchange.name, type: exchange.type), queues: queues, bindings: bindings, unbound: unbound)
    }
}
