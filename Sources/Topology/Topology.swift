import Foundation

/// The broker topology a `topology/topology.yaml` file describes: one exchange that
/// upstream services publish events to, and the consumers that read from it.
///
/// The consumer runtime reads it to know each consumer's queues and settings; `plan`,
/// `apply` and `export` turn it into broker declarations (``TopologyDeclarations``).
public struct Topology: Sendable, Equatable {
    public var exchange: ExchangeSpec
    /// In the order the file lists them.
    public var consumers: [ConsumerSpec]

    public init(exchange: ExchangeSpec, consumers: [ConsumerSpec]) {
        self.exchange = exchange
        self.consumers = consumers
    }

    public func consumer(named name: String) -> ConsumerSpec? {
        consumers.first { $0.name == name }
    }

    /// The default file: `WARREN_TOPOLOGY`, else `topology/topology.yaml`.
    public static var defaultPath: String {
        let value = ProcessInfo.processInfo.environment["WARREN_TOPOLOGY"] ?? ""
        return value.isEmpty ? "topology/topology.yaml" : value
    }

    /// Reads and validates a topology file; a broken file throws one ``TopologyError``
    /// naming the line and the key (`topology.yaml:12: consumers.x.retry_delays[1]: …`).
    public static func load(path: String = defaultPath) throws(TopologyError) -> Topology {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TopologyError(.invalidFile, file: path, "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(text, file: path)
    }

    /// Parses topology YAML; `file` only names the source in errors.
    public static func parse(_ yaml: String, file: String = "topology.yaml") throws(TopologyError) -> Topology {
        try TopologyParser(file: file).parse(yaml)
    }
}

/// The exchange events are published to. Always durable.
public struct ExchangeSpec: Sendable, Equatable {
    public var name: String
    /// `topic`, `direct` or `fanout`.
    public var type: String

    public init(name: String = "events", type: String = "topic") {
        self.name = name
        self.type = type
    }
}

/// One consumer: its name, what it is bound to, and how it retries and batches.
///
/// Its queues follow one convention, which the runtime and `apply` share through the
/// helpers below: main queue `<name>`, delay tiers `<name>.retry.<n>` (n from 1), and
/// dead-letter queue `<name>.dlq`.
public struct ConsumerSpec: Sendable, Equatable {
    public var name: String
    /// Routing-key patterns binding the exchange to the main queue (`user.*`, `#`).
    public var bindings: [String]
    /// Tries in total before a message is dead-lettered (1 = never retried).
    public var maxAttempts: Int
    /// Delay before retry n is `retryDelays[n-1]`; the last one repeats.
    public var retryDelays: [Duration]
    public var prefetch: Int
    /// The most events handled in one transaction.
    public var batchSize: Int
    /// How long an idle consumer lingers for a fuller batch after the first event (zero:
    /// it handles what it has at once, and batches grow only while work queues up).
    public var batchWait: Duration
    /// The broker-side redelivery limit (`x-delivery-limit`) of the main queue: a message
    /// redelivered this often (consumer crashes, requeues) goes to the DLQ.
    public var deliveryLimit: Int
    /// `enabled: false`: `apply` declares the queues but leaves the main queue unbound
    /// (and removes its live bindings), so nothing piles up for a consumer that does not
    /// run; `warren run` skips it and `warren consume` refuses it.
    public var enabled: Bool

    public init(
        name: String, bindings: [String], maxAttempts: Int, retryDelays: [Duration], prefetch: Int,
        batchSize: Int, batchWait: Duration, deliveryLimit: Int, enabled: Bool = true
    ) {
        self.name = name
        self.bindings = bindings
        self.maxAttempts = maxAttempts
        self.retryDelays = retryDelays
        self.prefetch = prefetch
        self.batchSize = batchSize
        self.batchWait = batchWait
        self.deliveryLimit = deliveryLimit
        self.enabled = enabled
    }

    /// The queue the consumer reads: `<name>`.
    public var queueName: String { name }

    /// Where failed messages end up: `<name>.dlq`.
    public var deadLetterQueueName: String { "\(name).dlq" }

    /// The delay queue of tier `tier` (1-based): `<name>.retry.<tier>`.
    public func retryQueueName(tier: Int) -> String { "\(name).retry.\(tier)" }

    /// Every delay queue, in tier order.
    public var retryQueueNames: [String] { retryDelays.indices.map { retryQueueName(tier: $0 + 1) } }

    /// Where a message goes after its `attempt`-th try (1-based) failed transiently: the
    /// delay queue to publish it to (default exchange, routing key = queue name), or nil
    /// when it has used all `maxAttempts` and belongs in the dead-letter queue.
    public func retryQueue(afterAttempt attempt: Int) -> (queue: String, delay: Duration)? {
        guard attempt >= 1, attempt < maxAttempts, !retryDelays.isEmpty else { return nil }
        let tier = min(attempt, retryDelays.count)
        return (retryQueueName(tier: tier), retryDelays[tier - 1])
    }
}
