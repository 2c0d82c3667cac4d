import AMQP
import Foundation
import Logging
import WarrenCore

/// Browse, replay and purge dead-letter queues.
///
/// Every operation makes one pass over the messages the queue held when it started: it
/// takes each with `basic.get` and either acts on it (replay: publish with confirm, then
/// ack; purge: ack) or puts it back at the tail (publish, then ack once confirmed), so after
/// the pass the queue holds the messages it left alone in their original order.
///
/// Why not simply leave messages unacked and let the broker return them: a RabbitMQ 3.10
/// quorum queue returns them at its head, but beyond 32 of them in no particular order
/// (measured, for channel close, management `ack_requeue_true` and per-message nacks alike;
/// `DeadLetterTests` checks the order we keep). Copying to the tail keeps the order, holds
/// at most `putBackWindow` unacked messages at a time (a process killed mid-pass leaves at
/// worst those duplicated), and does not count as a delivery attempt: Warren's own
/// `x-warren-attempts` is untouched and the broker's `x-delivery-count` starts afresh.
/// Messages dead-lettered during a pass land before the ones put back; two passes on one
/// queue at the same time interleave their put-backs.
public struct DeadLetterQueues: Sendable {
    public enum Destination: Sendable, Equatable {
        /// `x-warren-original-exchange` and `x-warren-original-routing-key` of each message.
        case original
        /// Straight to a queue, through the default exchange.
        case queue(String)

        /// How the audit table records it: nil for `.original`, `queue:NAME` otherwise.
        public var auditText: String? {
            switch self {
            case .original: nil
            case .queue(let name): "queue:\(name)"
            }
        }
    }

    public enum Action: Sendable {
        case replay(Destination)
        case purge
    }

    let connection: AMQPConnection
    let logger: Logger

    public init(connection: AMQPConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// How many messages `queue` holds; throws `notFound` if the broker has no such queue.
    public func messageCount(_ queue: String) async throws -> Int {
        let channel = try await connection.openChannel()
        do {
            let count = try await Self.messageCount(queue, on: channel)
            await channel.close()
            return Int(count)
        } catch {
            await channel.close()
            throw error
        }
    }

    private static func messageCount(_ queue: String, on channel: AMQPChannel) async throws -> UInt32 {
        do {
            return try await channel.queueInfo(queue).messageCount
        } catch let error as AMQPError where error.replyCode == 404 {
            throw OperationsError(.notFound, "no queue '\(queue)' on the broker")
        }
    }

    /// Every message in `queue`, in queue order; the queue is left as it was. Holds them
    /// all: for tests and small queues; commands use the streaming form below.
    public func browse(_ queue: String) async throws -> [AMQPDelivery] {
        var deliveries: [AMQPDelivery] = []
        try await browse(queue) { deliveries.append($0) }
        return deliveries
    }

    /// Hands each message in `queue` to `body`, in queue order, one at a time (besides it,
    /// only the `putBackWindow` copies awaiting their confirm are held, so any queue
    /// browses in constant memory); the queue is left as it was.
    /// `started` learns how many messages the pass will examine before the first one.
    public func browse(
        _ queue: String, started: (_ count: Int) async throws -> Void = { _ in }, _ body: (AMQPDelivery) async throws -> Void
    ) async throws {
        try await pass(over: queue, started: started) { delivery, _ in
            try await body(delivery)
            return false
        }
    }

    /// Replays or purges the messages `selector` picks, in queue order, and returns them.
    /// A replayed message is published with confirm (mandatory) and only then acked, so a
    /// process killed at any instant leaves it in the DLQ, republished, or both (a duplicate
    /// the consumer's inbox absorbs), never neither. `dryRun` only reports the selection.
    /// `record` runs for each message after it was republished and before its ack.
    public func settle(
        _ queue: String, selector: DeadLetterSelector, action: Action, dryRun: Bool = false, rate: RateLimiter? = nil,
        progress: (DeadLetterProgress) -> Void = { _ in }, record: (DeadLetterMessage) async throws -> Void = { _ in }
    ) async throws -> [DeadLetterMessage] {
        let now = Date()
        var selected: [DeadLetterMessage] = []
        try await pass(over: queue, progress: { examined, total in progress(DeadLetterProgress(examined: examined, total: total, selected: selected.count)) }) {
            delivery, publisher in
            let message = DeadLetterMessage(delivery)
            guard selected.count < (selector.limit ?? .max), selector.matches(message, now: now) else { return false }
            if case .replay = action, delivery.stringsNotUTF8 {
                // Its copy would carry replacement characters where the sender's bytes were.
                logger.error("dlq.message.not_replayable", metadata: [
                    "queue": "\(queue)", "message_id": "\(message.id)",
                    "reason": "a string property or header name is not valid UTF-8; left in the queue unchanged (purge or move it by other means)",
                ])
                return false
            }
            selected.append(message)
            guard !dryRun else { return false }
            try await rate?.acquire()
            if case .replay(let destination) = action {
                let (exchange, routingKey) = try Self.route(message, destination)
                try await publisher.publish(
                    delivery.body, exchange: exchange, routingKey: routingKey, properties: Self.replayed(delivery.properties, at: Date()),
                    mandatory: true)
            }
            try await record(message)
            logger.debug("dlq.message.settled", metadata: ["queue": "\(queue)", "message_id": "\(message.id)"])
            return true
        }
        return selected
    }

    /// Takes each message that was in `queue` when it started and hands it to `body`, which
    /// returns true to have it acked, false to have it put back at the tail, unchanged but
    /// for the broker's delivery count. Put-backs are published in a window of
    /// `putBackWindow` confirms in flight, each acked once its copy is confirmed: a quorum
    /// queue confirms after a disk sync, and one at a time a pass over 100,000 messages
    /// took about 17 minutes.
    private func pass(
        over queue: String, started: (_ count: Int) async throws -> Void = { _ in },
        progress: (_ examined: Int, _ total: Int) -> Void = { _, _ in }, _ body: (AMQPDelivery, AMQPChannel) async throws -> Bool
    ) async throws {
        // Publishes (put-backs, replays) go out on a channel of their own: `basic.get`
        // cannot share one with publishes awaiting confirms.
        let channel = try await connection.openChannel(confirms: false)
        let publisher: AMQPChannel
        do {
            publisher = try await connection.openChannel()
        } catch {
            await channel.close()
            throw error
        }
        var putBack = PutBacks(channel: channel)
        do {
            let count = Int(try await Self.messageCount(queue, on: channel))
            try await started(count)
            progress(0, count)
            for examined in stride(from: 1, through: count, by: 1) {
                guard let delivery = try await channel.get(queue: queue) else { break }
                if try await body(delivery, publisher) {
                    try channel.ack(delivery)
                } else if delivery.stringsNotUTF8 {
                    // A copy would not carry the sender's bytes (a string property or header
                    // name that is not UTF-8): left unacked, the original goes back to the
                    // queue unchanged when the pass closes its channel, ahead of the rest.
                } else {
                    var properties = delivery.properties
                    properties.headers?["x-delivery-count"] = nil
                    try await putBack.add(delivery, publisher.send(delivery.body, exchange: "", routingKey: queue, properties: properties, mandatory: true))
                }
                progress(examined, count)
            }
            try await putBack.drain(keeping: 0)
        } catch {
            // Copies already published keep their originals from coming back as duplicates.
            await putBack.settleWhatWasConfirmed()
            await channel.close()
            await publisher.close()
            throw error
        }
        await channel.close()
        await publisher.close()
    }

    /// At most this many put-back copies wait for their confirm; a process killed mid-pass
    /// leaves at worst these duplicated in the queue (the original comes back unacked).
    /// Kept under 32 for RabbitMQ 3.10 quorum queues: when more than about 32 acks reach
    /// the channel at once (the last window, acked as its confirms come in) and the channel
    /// closes right after, the acks beyond those are dropped and their messages requeued
    /// (measured: 50 acks then close left 17 duplicated; `DeadLetterTests` would see them).
    static let putBackWindow = 16

    /// Put-back copies in flight, oldest first; each original is acked when its copy is confirmed.
    private struct PutBacks {
        let channel: AMQPChannel
        var inFlight: [(delivery: AMQPDelivery, confirmation: PublishConfirmation)] = []

        init(channel: AMQPChannel) { self.channel = channel }

        mutating func add(_ delivery: AMQPDelivery, _ confirmation: PublishConfirmation) async throws {
            inFlight.append((delivery, confirmation))
            try await drain(keeping: DeadLetterQueues.putBackWindow - 1)
        }

        mutating func drain(keeping limit: Int) async throws {
            while inFlight.count > limit {
                let (delivery, confirmation) = inFlight.removeFirst()
                try await confirmation.confirmed()
                try channel.ack(delivery)
            }
        }

        /// After a failure: acks each original whose copy was confirmed, leaves the rest
        /// to come back (a copy that failed is not in the queue).
        mutating func settleWhatWasConfirmed() async {
            for (delivery, confirmation) in inFlight {
                if (try? await confirmation.confirmed()) != nil { try? channel.ack(delivery) }
            }
            inFlight = []
        }
    }

    static func route(_ message: DeadLetterMessage, _ destination: Destination) throws -> (exchange: String, routingKey: String) {
        switch destination {
        case .queue(let name):
            return ("", name)
        case .original:
            guard let exchange = message.originalExchange, let routingKey = message.originalRoutingKey else {
                throw OperationsError(.noDestination, "message \(message.id) has no x-warren-original-exchange/routing-key headers; replay it with --to-queue")
            }
            return (exchange, routingKey)
        }
    }

    /// Headers that describe one failure episode; a replay starts a new one, so they go.
    /// `x-warren-first-failed-at` and `x-warren-original-*` stay as history (and so that a
    /// replayed message that fails again still knows where it came from).
    static let failureHeaders = [
        WarrenHeader.attempts, WarrenHeader.consumer, WarrenHeader.errorType, WarrenHeader.error, WarrenHeader.lastFailedAt,
        "x-delivery-count", publishSequenceHeader,
    ]

    /// The next `x-warren-replayed`: the header's count + 1, saturating. The header came
    /// off the wire, so a value that is not a count (negative, not an integer) starts
    /// afresh at 1 instead of trapping or failing the replay.
    static func replayCount(after value: AMQPFieldValue?) -> Int64 {
        guard let count = value?.intValue, count > 0 else { return 1 }
        return count == .max ? .max : count + 1
    }

    /// The properties a replayed message is published with: attempt counter reset,
    /// `x-warren-replayed` + 1 and `x-warren-replayed-at`.
    static func replayed(_ properties: AMQPProperties, at date: Date) -> AMQPProperties {
        var properties = properties
        var headers = properties.headers ?? [:]
        for name in failureHeaders { headers[name] = nil }
        headers[WarrenHeader.replayed] = .int64(replayCount(after: headers[WarrenHeader.replayed]))
        headers[WarrenHeader.replayedAt] = .string(RFC3339.format(date))
        properties.headers = headers
        return properties
    }
}

/// How far a replay or purge is: messages taken from the queue of those it held when it
/// started, and how many of them were selected (replayed or purged, or would be).
public struct DeadLetterProgress: Sendable, Equatable {
    public var examined: Int
    public var total: Int
    public var selected: Int
}
