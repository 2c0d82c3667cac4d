import AMQP
import Foundation
import Logging
import Messaging
import Postgres
import ServiceLifecycle
import WarrenCore

/// What the runtime needs to know about one consumer; filled from the topology file.
public struct ConsumerSettings: Sendable {
    public var name: String
    public var queue: String
    /// One queue per delay tier, shortest delay first; each dead-letters back to `queue`.
    public var retryQueues: [String]
    public var deadLetterQueue: String
    /// Total processing attempts before a transiently failing event is dead-lettered.
    public var maxAttempts: Int
    public var prefetch: UInt16
    /// The most events handled in one transaction.
    public var batchSize: Int
    /// How long an idle consumer lingers for a fuller batch (see `Batcher`); zero by default.
    public var batchWait: Duration
    /// Larger bodies are never held in memory: dropped as they arrive, and the message is
    /// rejected so the broker dead-letters it (the queue's dead-letter routing).
    public var maxMessageBytes: Int

    public init(
        name: String, queue: String, retryQueues: [String], deadLetterQueue: String, maxAttempts: Int,
        prefetch: UInt16, batchSize: Int, batchWait: Duration, maxMessageBytes: Int = 1 << 20
    ) {
        self.name = name
        self.queue = queue
        self.retryQueues = retryQueues
        self.deadLetterQueue = deadLetterQueue
        self.maxAttempts = maxAttempts
        self.prefetch = prefetch
        self.batchSize = batchSize
        self.batchWait = batchWait
        self.maxMessageBytes = maxMessageBytes
    }
}

/// Runs one consumer: deliveries → batches → one PostgreSQL transaction each (inbox +
/// effects) → ack after commit. Failed events go to the next delay tier (transient, with
/// `x-warren-attempts` incremented) or the dead-letter queue (permanent, malformed,
/// invalid, unknown, or out of attempts); each copy is confirmed by the broker before the
/// original is acked, so nothing is lost between the two. An oversized body is never read
/// into memory: that message is rejected and the broker dead-letters it.
///
/// Infrastructure failures (database down) hold the batch unacked and retry it with
/// backoff: no retry attempt is burnt and nothing is requeued in a loop. On graceful
/// shutdown the in-flight batch finishes, is settled, and the rest returns to the queue.
public struct ConsumerRuntime: Service {
    let settings: ConsumerSettings
    let handler: ConsumerHandler
    let amqp: AMQPConnection
    let database: PostgresPool
    let catalog: EventCatalog?
    let logger: Logger
    let metrics: ConsumerMetrics
    let policy: FailurePolicy
    let observer: Observer?
    private let subscription: SubscriptionFlag
    private let failures: FailureLog

    /// The consumer's name in the topology.
    public var name: String { settings.name }
    /// True while the broker delivers to this consumer (for `/readyz`): subscribed, and
    /// connected (a reconnect subscribes again by itself).
    public var isSubscribed: Bool {
        guard subscription.isSet else { return false }
        switch amqp.state {
        case .connected, .blocked: return true
        case .connecting, .reconnecting, .closed: return false
        }
    }

    /// Called with each `ConsumerEvent`, on the consumer's task: it must be quick.
    public typealias Observer = @Sendable (ConsumerEvent) -> Void

    public init(
        settings: ConsumerSettings, module: any ConsumerModule, amqp: AMQPConnection, database: PostgresPool,
        catalog: EventCatalog?, logger: Logger, observer: Observer? = nil
    ) {
        self.init(
            settings: settings, handler: .transactional(module), amqp: amqp, database: database, catalog: catalog, logger: logger,
            observer: observer)
    }

    public init(
        settings: ConsumerSettings, handler: ConsumerHandler, amqp: AMQPConnection, database: PostgresPool,
        catalog: EventCatalog?, logger: Logger, observer: Observer? = nil
    ) {
        self.settings = settings
        self.handler = handler
        self.amqp = amqp
        self.database = database
        self.catalog = catalog
        var logger = logger
        logger[metadataKey: "consumer"] = .string(settings.name)
        self.logger = logger
        metrics = ConsumerMetrics(consumer: settings.name)
        subscription = SubscriptionFlag(gauge: metrics.subscribed)
        failures = FailureLog(consumer: settings.name)
        policy = FailurePolicy(
            consumer: settings.name, retryQueues: settings.retryQueues, deadLetterQueue: settings.deadLetterQueue,
            maxAttempts: settings.maxAttempts)
        self.observer = observer
    }

    public func run() async throws {
        let channel = try await amqp.openChannel()
        let publisher = try await amqp.openChannel()
        let consumer = try await channel.consume(queue: settings.queue, prefetch: settings.prefetch, maxBodySize: settings.maxMessageBytes)
        subscription.set(true)
        defer { subscription.set(false) }
        let batcher = Batcher<Item>()
        logger.info("consumer.started", metadata: ["amqp.queue": "\(settings.queue)", "amqp.prefetch": "\(settings.prefetch)"])
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The last failure, for `warren status`, written beside the loop.
                group.addTask { await failures.run(database: database, logger: logger) }
                // Deliveries are decoded and validated as they arrive, on this task, while
                // the loop below is in a PostgreSQL transaction (its round trips leave the
                // loop idle, and decoding is most of the CPU an event costs here).
                group.addTask {
                    do {
                        for try await delivery in consumer { batcher.push(item(for: delivery)) }
                        batcher.finish(nil)
                    } catch {
                        batcher.finish(error)
                    }
                }
                // Whatever is decoded when the loop is free is the next batch: one event at
                // once when idle, up to batch_size of what arrived during the last commit
                // under load.
                while let items = try await batcher.next(max: settings.batchSize, wait: settings.batchWait) {
                    metrics.received.increment(by: items.count)
                    metrics.batchSize.record(items.count)
                    await process(Batch(items: items, started: .now), channel: channel, publisher: publisher)
                }
                try? await consumer.cancel()
                failures.finish()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            batcher.stop()
        }
        // Unsettled deliveries still buffered go back to the queue with the channel.
        await channel.close()
        await publisher.close()
        logger.info("consumer.stopped")
    }

    // MARK: One batch

    private struct Item: Sendable {
        var delivery: AMQPDelivery
        /// 1 for a first delivery; `x-warren-attempts` + 1 after retries.
        var attempt: Int
        var event: CloudEvent?
        var info = DeliveryInfo()
        var outcome: Outcome = .pending
    }

    private enum Outcome: Sendable {
        case pending, applied, duplicate
        case failed(HandlerFailure)
    }

    private struct Batch {
        var items: [Item]
        /// When the loop took it: the processing latency runs from here to settlement.
        var started: ContinuousClock.Instant
    }

    /// A delivery decoded and validated, or failed with the reason it cannot be applied.
    private func item(for delivery: AMQPDelivery) -> Item {
        if let size = delivery.discardedBodySize {
            let failure = HandlerFailure.permanent("event.\(EventError.Code.oversized)", "body of \(size) bytes exceeds \(settings.maxMessageBytes)")
            return Item(delivery: delivery, attempt: 1, outcome: .failed(failure))
        }
        if delivery.stringsNotUTF8 {
            let failure = HandlerFailure.permanent("header.encoding", "a string property or header name is not valid UTF-8")
            return Item(delivery: delivery, attempt: 1, outcome: .failed(failure))
        }
        let attempt: Int
        switch FailurePolicy.attempt(of: delivery) {
        case .success(let count): attempt = count
        case .failure(let refusal): return Item(delivery: delivery, attempt: 1, outcome: .failed(refusal))
        }
        var item = Item(delivery: delivery, attempt: attempt, info: DeliveryInfo(replayed: FailurePolicy.replayed(delivery.properties.headers)))
        do {
            item.event = try decode(delivery)
        } catch {
            item.outcome = .failed(.permanent("event.\(error.code)", error.description))
        }
        return item
    }

    private func process(_ batch: Batch, channel: AMQPChannel, publisher: AMQPChannel) async {
        var items = batch.items
        let decoded = items.filter { $0.event != nil }
        guard let outcomes = await applyHoldingOnInfrastructureFailure(decoded.map { $0.event! }, decoded.map(\.info)) else {
            logger.notice("consumer.batch.abandoned", metadata: ["consumer.batch_size": "\(items.count)"])
            return  // shutting down with the database away: the broker redelivers all of it
        }
        var next = outcomes.makeIterator()
        for index in items.indices where items[index].event != nil { items[index].outcome = next.next()! }
        if let observer {
            var applied: [String] = [], duplicates: [String] = []
            for item in items {
                switch item.outcome {
                case .applied: applied.append(item.event!.id)
                case .duplicate: duplicates.append(item.event!.id)
                case .pending, .failed: break
                }
            }
            observer(.committed(applied: applied, duplicates: duplicates))
        }

        for item in items {
            switch item.outcome {
            case .applied, .pending:
                metrics.processed.increment()
                logger.debug("consumer.event.processed", metadata: Self.metadata(item))
                settle { try channel.ack(item.delivery) }
            case .duplicate:
                metrics.duplicates.increment()
                logger.debug("consumer.event.duplicate", metadata: Self.metadata(item))
                settle { try channel.ack(item.delivery) }
            case .failed(let failure) where item.delivery.discardedBodySize != nil || item.delivery.stringsNotUTF8:
                rejectToBrokerDeadLettering(item, failure, channel: channel)
            case .failed(let failure):
                await retryOrDeadLetter(item, failure, metadata: Self.metadata(item), channel: channel, publisher: publisher)
            }
        }
        metrics.latency.recordNanoseconds((ContinuousClock.now - batch.started).nanoseconds)
    }

    /// Built only when a log line is written (the log calls take it as an autoclosure):
    /// per event, on the hot path.
    private static func metadata(_ item: Item) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "message_id": "\(item.delivery.properties.messageID ?? "-")", "event_type": "\(item.event?.type ?? item.delivery.properties.type ?? "-")",
            "attempt": "\(item.attempt)",
        ]
        if let trace = item.event?.traceContext { metadata["trace_id"] = .string(trace.traceID) }
        return metadata
    }

    private func decode(_ delivery: AMQPDelivery) throws(EventError) -> CloudEvent {
        let event = try CloudEvent(delivery: delivery)
        try catalog?.validate(event)
        return event
    }

    /// Settles a delivery; a stale one (connection lost since) is redelivered by the
    /// broker and then recognised by the inbox, so that error needs no handling.
    private func settle(_ body: () throws -> Void) {
        do {
            try body()
        } catch {
            logger.notice("consumer.settle.skipped", metadata: ["error": "\(error)"])
        }
    }

    // MARK: PostgreSQL

    /// Applies the events, retrying with backoff while the database is unreachable. Nil
    /// when shutdown began meanwhile.
    private func applyHoldingOnInfrastructureFailure(_ events: [CloudEvent], _ infos: [DeliveryInfo]) async -> [Outcome]? {
        guard !events.isEmpty else { return [] }
        var delay = Duration.milliseconds(100)
        while true {
            do {
                switch handler {
                case .transactional(let module): return try await apply(events, module)
                case .calling(let module): return try await handleOneByOne(events, infos, module)
                }
            } catch let error as PostgresError where error.isInfrastructure {
                logger.warning("consumer.database.unavailable", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                if Task.isShuttingDownGracefully || Task.isCancelled { return nil }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            } catch {
                return nil
            }
        }
    }

    /// One transaction for the batch; if it fails as a whole, each event alone.
    private func apply(_ events: [CloudEvent], _ module: any ConsumerModule) async throws -> [Outcome] {
        do {
            return try await applyInTransaction(events, module)
        } catch let error as PostgresError where error.isInfrastructure {
            throw error
        } catch where events.count > 1 {
            logger.info("consumer.batch.split", metadata: ["error": "\(error)", "consumer.batch_size": "\(events.count)"])
            var outcomes: [Outcome] = []
            for event in events { outcomes += try await apply([event], module) }
            return outcomes
        } catch {
            return [.failed(FailurePolicy.classify(error))]
        }
    }

    private func applyInTransaction(_ events: [CloudEvent], _ module: any ConsumerModule) async throws -> [Outcome] {
        try await database.withConnection { connection in
            try await connection.transaction { connection in
                // Claimed first: a duplicate (already recorded, or recorded meanwhile by
                // another consumer process) never reaches the module. Sorted, so that
                // two processes claiming overlapping batches cannot deadlock.
                let claimed = try await Inbox.claim(consumer: settings.name, ids: events.map(\.id).sorted(), on: connection)
                var outcomes = [Outcome](repeating: .duplicate, count: events.count)
                var fresh: [Int] = []
                var inBatch = Set<String>()
                for (index, event) in events.enumerated() where claimed.contains(event.id) && inBatch.insert(event.id).inserted {
                    fresh.append(index)
                }
                let started = ContinuousClock.now
                let failures = try await module.apply(fresh.map { events[$0] }, on: connection)
                metrics.handler.record(duration: ContinuousClock.now - started)
                var unapplied: [String] = []
                for (position, index) in fresh.enumerated() {
                    if let failure = failures[position] {
                        outcomes[index] = .failed(failure)
                        unapplied.append(events[index].id)
                    } else {
                        outcomes[index] = .applied
                    }
                }
                try await Inbox.release(consumer: settings.name, ids: unapplied, on: connection)
                return outcomes
            }
        }
    }

    /// A calling module's events: those already in the inbox are duplicates; each fresh one
    /// is handled alone with no transaction open and no connection held; the handled ones
    /// are then recorded in the inbox. A database outage (thrown) holds the batch: events
    /// handled before it are found again by the module's own records.
    private func handleOneByOne(_ events: [CloudEvent], _ infos: [DeliveryInfo], _ module: any CallingModule) async throws -> [Outcome] {
        let seen: Set<String>
        do {
            seen = try await database.withConnection { connection in
                try await Inbox.seen(consumer: settings.name, ids: events.map(\.id), on: connection)
            }
        } catch let error as PostgresError where !error.isInfrastructure {
            // A statement that failed (a timeout): every event fails alike and is retried.
            return [Outcome](repeating: .failed(FailurePolicy.classify(error)), count: events.count)
        }
        var outcomes = [Outcome](repeating: .duplicate, count: events.count)
        var inBatch = Set<String>()
        var handled: [Int] = []
        for (index, event) in events.enumerated() where !seen.contains(event.id) && inBatch.insert(event.id).inserted {
            // Past the grace period of a shutdown: what is left goes back to the queue.
            if Task.isCancelled { throw CancellationError() }
            let started = ContinuousClock.now
            let failure: HandlerFailure?
            do {
                failure = try await module.handle(event, delivery: infos[index], database: database)
            } catch let error as PostgresError where error.isInfrastructure {
                throw error
            } catch {
                failure = FailurePolicy.classify(error)
            }
            metrics.handler.record(duration: ContinuousClock.now - started)
            if let failure {
                outcomes[index] = .failed(failure)
            } else {
                outcomes[index] = .applied
                handled.append(index)
            }
        }
        guard !handled.isEmpty else { return outcomes }
        do {
            _ = try await database.withConnection { connection in
                try await Inbox.claim(consumer: settings.name, ids: handled.map { events[$0].id }.sorted(), on: connection)
            }
        } catch let error as PostgresError where !error.isInfrastructure {
            // The effects are recorded by the module itself: retried, they are found there.
            for index in handled { outcomes[index] = .failed(FailurePolicy.classify(error)) }
        }
        return outcomes
    }

    // MARK: Retry and dead-letter

    /// A body over the limit was never read into memory, so there is nothing to publish:
    /// the delivery is rejected and the broker dead-letters it (the queue routes rejected
    /// messages to its DLQ; the copy carries `x-death` with reason `rejected`, not
    /// Warren's failure headers). The reason is logged and counted.
    /// For a message Warren cannot copy unchanged (a body it did not keep, strings that
    /// are not UTF-8): the broker dead-letters the original, bytes intact, with `x-death`
    /// reason `rejected` and no `x-warren-*` headers; the reason is logged and kept in
    /// the failure log.
    private func rejectToBrokerDeadLettering(_ item: Item, _ failure: HandlerFailure, channel: AMQPChannel) {
        var metadata = Self.metadata(item)
        metadata["error"] = "\(failure)"
        metadata["amqp.target_queue"] = "\(settings.deadLetterQueue)"
        let destination = FailurePolicy.Destination.deadLetter(queue: settings.deadLetterQueue)
        failures.note(FailureLog.Failure(
            messageID: item.delivery.properties.messageID, eventType: item.delivery.properties.type, errorType: failure.type,
            error: failure.message, destination: destination.queue, at: Date()))
        observer?(.failed(messageID: item.delivery.properties.messageID, attempt: item.attempt, destination: destination, failure: failure))
        if item.delivery.discardedBodySize != nil {
            metrics.rejectedOversize.increment()
            logger.error("consumer.event.rejected_oversize", metadata: metadata)
        } else {
            logger.error("consumer.event.rejected_not_utf8", metadata: metadata)
        }
        settle { try channel.reject(item.delivery, requeue: false) }
    }

    private func retryOrDeadLetter(
        _ item: Item, _ failure: HandlerFailure, metadata: Logger.Metadata, channel: AMQPChannel, publisher: AMQPChannel
    ) async {
        var destination = policy.destination(of: failure, attempt: item.attempt)
        var properties = item.delivery.properties
        properties.headers = policy.headers(for: item.delivery, attempt: item.attempt, failure: failure, at: Date())
        var metadata = metadata
        metadata["error"] = "\(failure)"
        do {
            do {
                try await publisher.publish(item.delivery.body, exchange: "", routingKey: destination.queue, properties: properties, mandatory: true)
            } catch let error as AMQPError where error.code == .invalidMessage {
                // The message cannot be sent again as it came (headers too large for a
                // frame once Warren's are added, or a property the sender made too long):
                // dead-letter it with Warren's headers alone rather than requeue it forever.
                destination = .deadLetter(queue: settings.deadLetterQueue)
                properties = policy.strippedProperties(
                    for: item.delivery, attempt: item.attempt, failure: failure, reason: error.context, at: Date())
                try await publisher.publish(item.delivery.body, exchange: "", routingKey: destination.queue, properties: properties, mandatory: true)
            }
        } catch {
            // Not taken by the broker: put the original back rather than lose it.
            metadata["amqp.target_queue"] = "\(destination.queue)"
            logger.error("consumer.republish.failed", metadata: metadata.merging(["republish_error": "\(error)"]) { $1 })
            observer?(.republishFailed(messageID: item.delivery.properties.messageID, error: "\(error)"))
            try? await Task.sleep(for: .seconds(1))
            settle { try channel.nack(item.delivery, requeue: true) }
            return
        }
        metadata["amqp.target_queue"] = "\(destination.queue)"
        failures.note(FailureLog.Failure(
            messageID: item.delivery.properties.messageID, eventType: item.event?.type ?? item.delivery.properties.type, errorType: failure.type,
            error: failure.message, destination: destination.queue, at: Date()))
        observer?(.failed(messageID: item.delivery.properties.messageID, attempt: item.attempt, destination: destination, failure: failure))
        if case .retry = destination {
            metrics.retried.increment()
            logger.warning("consumer.event.retry", metadata: metadata)
        } else {
            metrics.deadLettered.increment()
            logger.error("consumer.event.dead_lettered", metadata: metadata)
        }
        settle { try channel.ack(item.delivery) }
    }
}

extension PostgresError {
    /// The database could not be reached or the connection died: nothing about the
    /// events themselves, so they must not burn retry attempts.
    var isInfrastructure: Bool {
        code == .connectionFailed || code == .connectionLost || code == .closed || code == .acquireTimeout
            || (sqlState.map { $0.hasPrefix("08") || $0 == "57P01" || $0 == "57P03" } ?? false)
            || isStalePreparedStatement  // held and retried: the retry prepares the statement again
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
