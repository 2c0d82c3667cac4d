import AMQP
import Foundation
import Logging
import Messaging
import Metrics
import Postgres
import ServiceLifecycle
import WarrenCore

public struct OutboxRelaySettings: Sendable {
    public var exchange = "events"
    /// Rows locked, published and marked in one transaction.
    public var batchSize = 100
    /// How long to sleep when idle if no notification comes (and the only wake-up when
    /// LISTEN is unavailable).
    public var pollInterval: Duration = .seconds(1)
    /// Published rows older than this are deleted. Parked rows are kept.
    public var retention: Duration = .seconds(7 * 86_400)
    public var pruneInterval: Duration = .seconds(60)
    public var publishTimeout: Duration = .seconds(10)
    /// Pause after a failed batch (broker or database down) before the next try.
    public var failureBackoff: Duration = .seconds(1)
    /// While the LISTEN connection cannot be made (database down), how often to try
    /// again; meanwhile the relay polls every `pollInterval`.
    public var listenRetryInterval: Duration = .seconds(10)
    /// How often the pending gauges are measured (`WARREN_QUEUE_METRICS_INTERVAL`).
    public var metricsInterval: Duration = .seconds(15)

    public init() {}
}

/// Publishes pending outbox rows in id order, each with a confirm (mandatory, to the
/// `events` exchange, the stored JSON byte for byte as the body and the properties of
/// `CloudEvent.amqpMessage()`), and marks them published in the same transaction that
/// locked them, after the broker confirmed them.
///
/// Rows are locked `FOR UPDATE SKIP LOCKED`, so relays running side by side take disjoint
/// batches and never publish a row twice while both are healthy. A relay that dies between
/// a confirm and its commit leaves the row pending: it is published again (a duplicate the
/// consumers' inbox absorbs), never lost. An unroutable event (returned) is parked with
/// the reason rather than retried forever. Wakes on `NOTIFY warren_outbox` through a
/// dedicated LISTEN connection, with `pollInterval` polling as the fallback.
/// The relay's metrics: `warren_outbox_pending`, `warren_outbox_oldest_pending_age_seconds`
/// (gauges, refreshed every `metricsInterval`), `warren_outbox_published_total`,
/// `warren_outbox_parked_total`.
struct OutboxMetrics: Sendable {
    let pending = Gauge(label: "warren_outbox_pending")
    let oldestPendingAge = Gauge(label: "warren_outbox_oldest_pending_age_seconds")
    let published = Counter(label: "warren_outbox_published_total")
    let parked = Counter(label: "warren_outbox_parked_total")
}

public struct OutboxRelay: Service {
    let settings: OutboxRelaySettings
    let amqp: AMQPConnection
    let database: PostgresPool
    let conninfo: String
    let logger: Logger
    let metrics = OutboxMetrics()

    public init(settings: OutboxRelaySettings = OutboxRelaySettings(), amqp: AMQPConnection, database: PostgresPool, conninfo: String, logger: Logger) {
        self.settings = settings
        self.amqp = amqp
        self.database = database
        self.conninfo = conninfo
        self.logger = logger
    }

    public func run() async throws {
        let channel = try await amqp.openChannel()
        let wakeup = Wakeup()
        // Its own Service, run beside the loop and ended with it.
        let listener = PostgresListener(
            conninfo: conninfo, channel: Outbox.notificationChannel, retryInterval: settings.listenRetryInterval, logger: logger
        ) { wakeup.signal() }
        logger.info("outbox.relay.started")
        await withDiscardingTaskGroup { group in
            group.addTask { try? await listener.run() }
            await relayUntilShutdown(on: channel, wakeup: wakeup)
            group.cancelAll()
        }
        await channel.close()
        logger.info("outbox.relay.stopped")
    }

    /// Batches until graceful shutdown or cancellation; between batches that left nothing
    /// behind, waits for a notification or at most `pollInterval`.
    private func relayUntilShutdown(on channel: AMQPChannel, wakeup: Wakeup) async {
        var nextPrune = ContinuousClock.now
        var nextGauges = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // First: the gauges matter most while batches fail (the backlog grows).
            if ContinuousClock.now >= nextGauges {
                await measurePending()
                nextGauges = ContinuousClock.now + settings.metricsInterval
            }
            let taken: Int
            do {
                taken = try await relayBatch(on: channel)
            } catch {
                logger.warning("outbox.relay.failed", metadata: ["error": "\(error)"])
                await pause(settings.failureBackoff)
                continue
            }
            if ContinuousClock.now >= nextPrune {
                await prune()
                nextPrune = ContinuousClock.now + settings.pruneInterval
            }
            guard taken < settings.batchSize else { continue }
            await wakeup.wait(timeout: settings.pollInterval)
        }
    }

    /// One transaction: lock the oldest pending rows, publish them in order, mark what the
    /// broker confirmed (and park what it returned), commit. A publish that fails for any
    /// other reason ends the batch there; what was confirmed before it is still committed,
    /// and the error is rethrown after the commit. Returns how many rows it locked.
    func relayBatch(on channel: AMQPChannel) async throws -> Int {
        let (taken, failure, count, parked) = try await database.withConnection { connection in
            try await connection.transaction { connection -> (Int, (any Error)?, Int, Int) in
                let rows = try await connection.query("""
                    SELECT id, event, traceparent, tracestate FROM warren_outbox WHERE published_at IS NULL AND parked_at IS NULL
                    ORDER BY id LIMIT \(settings.batchSize) FOR UPDATE SKIP LOCKED
                    """)
                var published: [Int64] = []
                var parked = 0
                var failure: (any Error)?
                for row in rows {
                    let id = try row.decode(Int64.self, at: 0)
                    do {
                        // Published as stored: a service writing rows itself may use what
                        // CloudEvent does not keep (extension attributes, exact numbers).
                        let stored = Array(try row.decode(String.self, at: 1).utf8)
                        var event = try CloudEvent(jsonBytes: stored)
                        // The trace it was enqueued in, continued by its consumers.
                        event.traceContext = try row.decode(String?.self, at: 2).flatMap {
                            TraceContext(traceparent: $0, tracestate: try row.decode(String?.self, at: 3))
                        }
                        try event.validateForAMQP()
                        let message = event.amqpMessage(body: stored)
                        try await channel.publish(
                            message.body, exchange: settings.exchange, routingKey: message.routingKey, properties: message.properties,
                            mandatory: true, timeout: settings.publishTimeout)
                        published.append(id)
                    } catch let error as AMQPError where error.code == .publishReturned {
                        try await park(id, reason: "unroutable: \(error.replyText ?? error.description)", on: connection)
                        parked += 1
                    } catch let error as EventError {
                        try await park(id, reason: "invalid event: \(error)", on: connection)
                        parked += 1
                    } catch let error as AMQPError where error.code == .invalidMessage {
                        try await park(id, reason: "cannot be encoded: \(error)", on: connection)
                        parked += 1
                    } catch {
                        failure = error
                        break
                    }
                }
                if !published.isEmpty {
                    let ids = "{" + published.map(String.init).joined(separator: ",") + "}"
                    try await connection.execute("UPDATE warren_outbox SET published_at = now() WHERE id = ANY(\(ids)::bigint[])")
                }
                return (rows.count, failure, published.count, parked)
            }
        }
        // Counted once committed.
        metrics.published.increment(by: count)
        metrics.parked.increment(by: parked)
        if let failure { throw failure }
        return taken
    }

    private func park(_ id: Int64, reason: String, on connection: PostgresConnection) async throws {
        logger.error("outbox.event.parked", metadata: ["outbox.id": "\(id)", "reason": "\(reason)"])
        try await connection.execute("UPDATE warren_outbox SET parked_at = now(), park_reason = \(reason) WHERE id = \(id)")
    }

    /// The pending gauges: how many rows wait and how long the oldest has waited.
    private func measurePending() async {
        do {
            let row = try await database.withConnection { connection in
                try await connection.query("""
                    SELECT count(*)::bigint, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
                    FROM warren_outbox WHERE published_at IS NULL AND parked_at IS NULL
                    """)
            }.first
            if let row {
                metrics.pending.record(try row.decode(Int64.self, at: 0))
                metrics.oldestPendingAge.record(try row.decode(Double.self, at: 1))
            }
        } catch {
            logger.warning("outbox.metrics.failed", metadata: ["error": "\(error)"])
        }
    }

    private func prune() async {
        let seconds = Int64(settings.retention.components.seconds)
        do {
            let removed = try await database.withConnection { connection in
                try await connection.execute(
                    "DELETE FROM warren_outbox WHERE published_at < now() - make_interval(secs => \(seconds))")
            }
            if removed > 0 { logger.info("outbox.pruned", metadata: ["rows": "\(removed)"]) }
        } catch {
            logger.warning("outbox.prune.failed", metadata: ["error": "\(error)"])
        }
    }

    /// Sleeps, but wakes at once for a graceful shutdown.
    private func pause(_ duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}
