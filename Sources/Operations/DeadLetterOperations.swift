import AMQP
import Postgres
import WarrenCore

/// The dead-letter use cases ops run (`warren dlq list|show|replay|purge`), on top of the
/// single-pass `DeadLetterQueues`: listing that tolerates undeclared queues, finding one
/// message, and replay and purge recorded in the audit table.
public struct DeadLetterOperations: Sendable {
    public let queues: DeadLetterQueues

    public init(queues: DeadLetterQueues) {
        self.queues = queues
    }

    /// What a listing reports, in order: for each queue, `queue` (with the number of
    /// messages the pass examines, or nil when the queue is not declared), then each of
    /// its messages, then `end` with how many were examined.
    public enum ListingItem: Sendable {
        case queue(String, count: Int?)
        case message(DeadLetterMessage)
        case end(String, examined: Int)
    }

    /// The messages of each queue, streamed to `body` one at a time (constant memory
    /// whatever the queues hold). With `missingAllowed` (listing every consumer's DLQ) a
    /// queue that was never declared is reported as such; otherwise it is `notFound`.
    public func list(_ names: [String], missingAllowed: Bool, _ body: (ListingItem) async throws -> Void) async throws {
        for name in names {
            var examined = 0
            do {
                try await queues.browse(name, started: { try await body(.queue(name, count: $0)) }) { delivery in
                    examined += 1
                    try await body(.message(DeadLetterMessage(delivery)))
                }
            } catch let error as OperationsError where error.code == .notFound && missingAllowed {
                try await body(.queue(name, count: nil))
                continue
            }
            try await body(.end(name, examined: examined))
        }
    }

    /// The dead-lettered message with this id, whole (the first if several have it). The
    /// pass still goes over the whole queue, holding only that message, so that the
    /// others keep their order.
    public func show(_ queue: String, id: String) async throws -> AMQPDelivery {
        var found: AMQPDelivery?
        try await queues.browse(queue) { delivery in
            if found == nil, delivery.properties.messageID == id { found = delivery }
        }
        guard let found else { throw OperationsError(.notFound, "no message \(id) in \(queue)") }
        return found
    }

    /// What a replay or purge is asked to do, and who asks.
    public struct Request: Sendable {
        public var queue: String
        public var action: DeadLetterQueues.Action
        public var selector: DeadLetterSelector
        public var actor: String
        public var dryRun: Bool
        /// At most this many messages per second.
        public var rate: Int?

        public init(queue: String, action: DeadLetterQueues.Action, selector: DeadLetterSelector, actor: String, dryRun: Bool = false, rate: Int? = nil) {
            self.queue = queue
            self.action = action
            self.selector = selector
            self.actor = actor
            self.dryRun = dryRun
            self.rate = rate
        }
    }

    /// Replays or purges the selected messages (see `DeadLetterQueues.settle`). Unless a dry
    /// run, an audit row in `database` is started first (after checking the queue exists,
    /// so a typo leaves no row), each message id is recorded before its ack, and the row is
    /// finished last.
    public func settle(
        _ request: Request, auditIn database: PostgresPool, progress: (DeadLetterProgress) -> Void = { _ in }
    ) async throws -> [DeadLetterMessage] {
        _ = try await queues.messageCount(request.queue)
        var audit: DeadLetterAudit?
        if !request.dryRun {
            audit = try await DeadLetterAudit.start(
                action: request.action.auditName, actor: request.actor, queue: request.queue, selector: request.selector,
                destination: request.action.destination?.auditText, database: database)
        }
        let messages = try await queues.settle(
            request.queue, selector: request.selector, action: request.action, dryRun: request.dryRun,
            rate: request.rate.map { RateLimiter(rate: $0, per: .seconds(1), burst: 1) }, progress: progress
        ) { message in
            try await audit?.append(message.id)
        }
        try await audit?.finish()
        return messages
    }
}

extension DeadLetterQueues.Action {
    /// `replay` or `purge`, as the audit table records it.
    public var auditName: String {
        switch self {
        case .replay: "replay"
        case .purge: "purge"
        }
    }

    var destination: DeadLetterQueues.Destination? {
        if case .replay(let destination) = self { destination } else { nil }
    }
}
