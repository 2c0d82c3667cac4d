import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Locking
import struct Synchronization.Atomic
import WarrenCore

public struct WebhookDispatcherSettings: Sendable {
    public var policy = DeliveryPolicy()
    /// Requests in flight to one subscription at once (per dispatcher process).
    public var perSubscriptionConcurrency = 8
    /// The same for a subscription that has failed since its last success: a dead
    /// endpoint holds few slots while it times out.
    public var perFailingSubscriptionConcurrency = 2
    /// Requests in flight in all; endpoints that hang take only their own slots.
    public var concurrency = 512
    /// Deliveries a healthy subscription may hold leased ahead of sending (a failing one
    /// holds only `perFailingSubscriptionConcurrency`).
    public var prefetch = 32
    /// Deliveries held in all.
    public var maximumHeld = 4_096
    /// How long a finished attempt may wait to be recorded with others.
    public var recordLinger: Duration = .milliseconds(5)

    /// How long a leased delivery stays the dispatcher's. It covers sending what a
    /// subscription holds, its requests one slot-full after another, the rate limiter's
    /// wait and the recording; a lease that still runs out only means the delivery is sent
    /// again.
    var lease: Duration {
        let rounds = (prefetch + perSubscriptionConcurrency - 1) / perSubscriptionConcurrency
        let queueing = ratePerSecond.map { Duration.seconds(maximumHeld / $0 + 1) } ?? .zero
        return policy.timeout * rounds + .seconds(15) + queueing
    }

    var limits: DispatchSlots.Limits {
        .init(perSubscription: perSubscriptionConcurrency, perFailingSubscription: perFailingSubscriptionConcurrency, prefetch: max(prefetch, perSubscriptionConcurrency), total: concurrency)
    }
    /// Requests per second in all, if limited (for every process together when the
    /// dispatcher's bucket is shared through Redis).
    public var ratePerSecond: Int? = 5_000
    /// How long to sleep when idle if no notification comes (and the only wake-up when
    /// LISTEN is unavailable): retries fall due without one.
    public var pollInterval: Duration = .seconds(1)
    /// Finished deliveries and their log are deleted after this long.
    public var retention: Duration = .seconds(30 * 86_400)
    public var pruneInterval: Duration = .seconds(600)
    /// Pause after the database failed before trying again.
    public var failureBackoff: Duration = .seconds(1)
    /// Opens the stored secrets (`WARREN_SECRETS_KEY`); at start the dispatcher seals
    /// those not sealed under its current key yet.
    public var sealer = SecretSealer.clear

    public init() {}

    /// `WARREN_WEBHOOK_TIMEOUT` (seconds), `WARREN_WEBHOOK_RETRY_SCHEDULE` (comma-separated
    /// seconds), `WARREN_WEBHOOK_DISABLE_AFTER` (seconds), `WARREN_WEBHOOK_CONCURRENCY`
    /// (per subscription), `WARREN_WEBHOOK_RATE` (per second in all, 0 = unlimited).
    public static func from(environment: [String: String]) throws(WebhookError) -> WebhookDispatcherSettings {
        var settings = WebhookDispatcherSettings()
        func seconds(_ name: String, _ text: String) throws(WebhookError) -> Duration {
            guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value > 0, value <= 30 * 86_400 else {
                throw WebhookError.invalid(name, "\(name) must be a positive number of seconds (got '\(text)')")
            }
            return .milliseconds(Int64(value * 1000))
        }
        if let text = environment["WARREN_WEBHOOK_TIMEOUT"] { settings.policy.timeout = try seconds("WARREN_WEBHOOK_TIMEOUT", text) }
        if let text = environment["WARREN_WEBHOOK_DISABLE_AFTER"] { settings.policy.disableAfter = try seconds("WARREN_WEBHOOK_DISABLE_AFTER", text) }
        if let text = environment["WARREN_WEBHOOK_RETRY_SCHEDULE"] {
            settings.policy.schedule = try text.split(separator: ",").map { part throws(WebhookError) in
                try seconds("WARREN_WEBHOOK_RETRY_SCHEDULE", String(part))
            }
        }
        if let text = environment["WARREN_WEBHOOK_CONCURRENCY"] {
            guard let value = Int(text), (1...1000).contains(value) else {
                throw WebhookError.invalid("WARREN_WEBHOOK_CONCURRENCY", "WARREN_WEBHOOK_CONCURRENCY must be 1 to 1000 (got '\(text)')")
            }
            settings.perSubscriptionConcurrency = value
        }
        settings.sealer = try SecretSealer.from(environment: environment)
        if let text = environment["WARREN_WEBHOOK_RATE"] {
            guard let value = Int(text), value >= 0 else {
                throw WebhookError.invalid("WARREN_WEBHOOK_RATE", "WARREN_WEBHOOK_RATE must be a number of requests per second, 0 for no limit")
            }
            settings.ratePerSecond = value == 0 ? nil : value
        }
        return settings
    }
}

/// Sends pending webhook deliveries (a `Service` of `warren run` and of
/// `warren consume webhooks.delivery`).
///
/// The fan-out of the same process hands over what it stores, leased to this dispatcher
/// as far as it has room (`DeliveryHandoff`), when its transaction commits. Beside that,
/// its loop leases due deliveries (`WebhookDeliveries.claim`, up to `prefetch` per
/// subscription: retries, and what other processes or a full dispatcher left). Both go to
/// sending tasks; which one goes next is `DispatchSlots`' decision (at most
/// `perSubscriptionConcurrency` per subscription, fewer while it fails, `concurrency` in
/// all), and a task whose request ended takes the next one itself. A recorder beside the
/// loop records finished attempts in batches. The loop claims on `NOTIFY warren_webhooks`
/// (a fan-out that left deliveries due, or a retry request), when a busy subscription ran
/// low, and every `pollInterval`. On SIGTERM it stops claiming and taking hand-offs, gives
/// back what it leased but never sent, lets the requests in flight finish (each within the
/// timeout) and records them; anything unrecorded stays pending and is sent again when its
/// lease runs out, with the same `webhook-id`.
public struct WebhookDispatcher: Service {
    let settings: WebhookDispatcherSettings
    let database: PostgresPool
    let conninfo: String
    let destinations: DestinationGuard
    let logger: Logger
    let metrics = WebhookMetrics()
    /// The bucket of `settings.ratePerSecond`.
    let bucket: @Sendable (_ ratePerSecond: Int) -> any TokenBucket
    /// The fan-out of this process, if it runs here.
    let handoff: DeliveryHandoff?

    /// `bucket`: where the rate's tokens come from; by default this process' own, so
    /// each dispatcher gets the whole rate. `warren consume`/`run` pass one shared by
    /// every process through Redis when it is configured (`SharedStore.rateLimiter`).
    /// `handoff`: shared with the `WebhookFanOut` of this process, which then hands over
    /// the deliveries it stores instead of leaving them for a claim.
    public init(
        settings: WebhookDispatcherSettings, database: PostgresPool, conninfo: String, destinations: DestinationGuard, logger: Logger,
        bucket: @escaping @Sendable (_ ratePerSecond: Int) -> any TokenBucket = { RateLimiter(rate: $0, per: .seconds(1)) },
        handoff: DeliveryHandoff? = nil
    ) {
        self.handoff = handoff
        self.settings = settings
        self.database = database
        self.conninfo = conninfo
        self.destinations = destinations
        self.logger = logger
        self.bucket = bucket
    }

    /// What the loop and the sending tasks share.
    private final class Progress: Sendable {
        struct State {
            var slots: DispatchSlots
            var finished: [WebhookDeliveries.Finished] = []
            var oldestFinished: ContinuousClock.Instant?
        }

        let state: Mutex<State>
        /// Wakes the claiming loop: a notification, a subscription running low, shutdown.
        let wakeup = Wakeup()
        /// Wakes the recorder: the first attempt to record, or a full batch.
        let recordable = Wakeup()
        /// A notification came (or none was seen yet): claim for every subscription.
        let notified = Atomic<Bool>(true)
        /// Shutting down: the recorder stops once nothing is held.
        let draining = Atomic<Bool>(false)
        /// The deliveries the table held when this dispatcher last analyzed it.
        let analyzedRows = Atomic<Int>(0)
        /// Deliveries handed over since the loop last looked (for `StatisticsRefresh`).
        let handedOffSince = Atomic<Int>(0)

        init(limits: DispatchSlots.Limits) {
            state = Mutex(State(slots: DispatchSlots(limits: limits)))
        }

        /// Takes in a finished attempt and returns the next delivery this task should
        /// send (its slot is free now; recording comes later, in batches).
        func finished(_ item: WebhookDeliveries.Finished) -> WebhookDeliveries.Claimed? {
            let (next, record, claim) = state.withLock { state in
                state.slots.sent(item.claimed)
                state.finished.append(item)
                if state.oldestFinished == nil { state.oldestFinished = .now }
                return (state.slots.nextToSend(maximum: 1).first, state.finished.count == 1 || state.finished.count >= 64, state.slots.wantsClaim)
            }
            if record { recordable.signal() }
            if claim { wakeup.signal() }
            return next
        }

        /// Finished attempts to record: a batch once 64 wait or the oldest waited
        /// `linger`, or whatever there is when `all`.
        func takeFinished(all: Bool, linger: Duration) -> [WebhookDeliveries.Finished] {
            state.withLock { state in
                guard let oldest = state.oldestFinished, all || state.finished.count >= 64 || ContinuousClock.now - oldest >= linger else { return [] }
                defer {
                    state.finished.removeAll()
                    state.oldestFinished = nil
                }
                return state.finished
            }
        }

        var hasUnrecorded: Bool { state.withLock { !$0.finished.isEmpty } }

        func recorded(_ items: [WebhookDeliveries.Finished]) {
            let wantsClaim = state.withLock { state in
                state.slots.recorded(items.count)
                return state.slots.wantsClaim
            }
            if wantsClaim { wakeup.signal() }
        }

        func putBack(_ items: [WebhookDeliveries.Finished]) {
            state.withLock { state in
                state.finished.insert(contentsOf: items, at: 0)
                if state.oldestFinished == nil { state.oldestFinished = .now }
            }
        }

        var wantsClaim: Bool { state.withLock { $0.slots.wantsClaim } }
        var claimStart: (holding: [String: Int], mark: UInt64) { state.withLock { $0.slots.claimStart } }
        var totalHeld: Int { state.withLock { $0.slots.totalHeld } }

        /// Takes in what a claim leased and returns what to send now.
        func leased(_ claimed: [WebhookDeliveries.Claimed], asked: [String: Int], mark: UInt64, complete: Bool) -> [WebhookDeliveries.Claimed] {
            state.withLock { state in
                state.slots.leased(claimed, asked: asked, mark: mark, complete: complete)
                return state.slots.nextToSend()
            }
        }

        func nextToSend() -> [WebhookDeliveries.Claimed] { state.withLock { $0.slots.nextToSend() } }

        func handoffPlan(_ subscriptions: [String], maximumHeld: Int) -> [Bool] {
            state.withLock { $0.slots.handoffPlan(subscriptions, maximumHeld: maximumHeld) }
        }

        /// Takes in what the fan-out handed over and wakes the loop to send it.
        func handedOff(_ deliveries: [WebhookDeliveries.Claimed]) {
            state.withLock { $0.slots.handedOff(deliveries) }
            handedOffSince.add(deliveries.count, ordering: .relaxed)
            wakeup.signal()
        }

        func dropQueued() -> [WebhookDeliveries.Claimed] { state.withLock { $0.slots.dropQueued() } }
    }

    public func run() async throws {
        let sender = WebhookSender(destinations: destinations, timeout: settings.policy.timeout)
        let limiter = settings.ratePerSecond.map(bucket)
        let progress = Progress(limits: settings.limits)
        logger.info(
            "webhooks.dispatcher.started",
            metadata: ["webhooks.guard": "\(destinations.allowPrivate ? "lifted" : "on")", "webhooks.secrets": "\(settings.sealer.seals ? "sealed" : "clear")"])
        handoff?.attach(
            .init(
                lease: settings.lease, sealer: settings.sealer,
                plan: { [maximumHeld = settings.maximumHeld] in progress.handoffPlan($0, maximumHeld: maximumHeld) },
                take: { progress.handedOff($0) }))
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen(progress) }
            // Beside the loop: a database that is down at start delays neither sending
            // nor shutdown.
            group.addTask { await self.sealStoredSecrets() }
            // Recording runs beside claiming, on its own pool connection: neither waits
            // for the other's round trip.
            let recorder = Task { await self.recordUntilDrained(progress) }
            await withGracefulShutdownHandler {
                var nextPrune = ContinuousClock.now + .seconds(5)
                var lastClaim = ContinuousClock.now - settings.pollInterval
                var statistics = StatisticsRefresh(backlog: settings.prefetch)
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    var sending = progress.nextToSend()
                    var claimed = false
                    // Claim on a notification, on the poll, or when a busy subscription
                    // ran low: never once per finished request.
                    if progress.notified.exchange(false, ordering: .relaxed) || ContinuousClock.now - lastClaim >= settings.pollInterval
                        || progress.wantsClaim
                    {
                        lastClaim = .now
                        let (asked, mark) = progress.claimStart
                        let room = settings.maximumHeld - progress.totalHeld
                        let leased = await claim(holding: asked, room: room)
                        sending += progress.leased(leased, asked: asked, mark: mark, complete: leased.count < room)
                        claimed = !leased.isEmpty
                        if statistics.claimed(
                            leased.count, handedOff: progress.handedOffSince.exchange(0, ordering: .relaxed), at: lastClaim,
                            knownRows: progress.analyzedRows.load(ordering: .relaxed))
                        {
                            group.addTask { await self.analyze(progress) }
                        }
                    }
                    for delivery in sending {
                        group.addTask { await self.send(delivery, sender: sender, limiter: limiter, progress: progress) }
                    }
                    if ContinuousClock.now >= nextPrune {
                        await prune()
                        nextPrune = ContinuousClock.now + settings.pruneInterval
                    }
                    if !claimed && sending.isEmpty {
                        await progress.wakeup.wait(timeout: settings.pollInterval - (ContinuousClock.now - lastClaim))
                    }
                }
            } onGracefulShutdown: {
                progress.wakeup.signal()
            }
            // Draining: nothing more is handed over; what was leased but not sent goes back
            // at once; the requests in flight end within the timeout and the recorder
            // records them.
            handoff?.detach()
            await release(progress.dropQueued())
            progress.draining.store(true, ordering: .relaxed)
            progress.recordable.signal()
            await withTaskCancellationHandler {
                await recorder.value
            } onCancel: {
                recorder.cancel()
            }
            group.cancelAll()
        }
        await sender.shutdown()
        logger.info("webhooks.dispatcher.stopped")
    }

    /// Sends `delivery`, then whatever the slots give next, until they give nothing.
    private func send(_ delivery: WebhookDeliveries.Claimed, sender: WebhookSender, limiter: (any TokenBucket)?, progress: Progress) async {
        var next: WebhookDeliveries.Claimed? = delivery
        while let delivery = next {
            try? await limiter?.acquire()
            let attemptedAt = Date()
            let start = ContinuousClock.now
            let result = await sender.send(delivery)
            let finished = WebhookDeliveries.Finished(
                claimed: delivery, attemptedAt: attemptedAt, latency: ContinuousClock.now - start, result: result,
                decision: settings.policy.decide(result, attempt: delivery.attempt))
            metrics.attempted(finished.decision, latency: finished.latency)
            if finished.decision != .delivered {
                logger.notice(
                    "webhooks.delivery.failed",
                    metadata: [
                        "webhook.subscription": "\(delivery.subscriptionID)", "event_id": "\(delivery.eventID)", "attempt": "\(delivery.attempt)",
                        "outcome": "\(finished.outcome)", "error": "\(finished.error ?? "")",
                    ])
            }
            next = progress.finished(finished)
        }
    }

    /// Records finished attempts in batches (64, or what came within `recordLinger`) until
    /// shutdown has begun and nothing is held any more.
    private func recordUntilDrained(_ progress: Progress) async {
        while !Task.isCancelled {
            let draining = progress.draining.load(ordering: .relaxed)
            if draining && progress.totalHeld == 0 { return }
            if await record(progress, all: draining) { continue }
            await progress.recordable.wait(timeout: progress.hasUnrecorded ? settings.recordLinger : settings.pollInterval)
        }
    }

    /// Records what finished; false when there was nothing (or the database failed).
    private func record(_ progress: Progress, all: Bool) async -> Bool {
        let finished = progress.takeFinished(all: all, linger: settings.recordLinger)
        guard !finished.isEmpty else { return false }
        do {
            try await store(finished)
            progress.recorded(finished)
            return true
        } catch let error as PostgresError where [.connectionFailed, .connectionLost, .acquireTimeout, .closed].contains(error.code) {
            // Kept and recorded on the next pass; meanwhile they count in the room in all.
            progress.putBack(finished)
            logger.warning("webhooks.record.failed", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: settings.failureBackoff)
            return false
        } catch {
            // The database answered but refused the batch: one by one, so one bad row
            // cannot hold the others. One still refused is let go: its delivery stays
            // pending and is sent again once its lease runs out.
            logger.warning("webhooks.record.failed", metadata: ["error": "\(error)"])
            for item in finished {
                do {
                    try await store([item])
                } catch {
                    logger.error(
                        "webhooks.record.dropped",
                        metadata: ["webhook.subscription": "\(item.claimed.subscriptionID)", "event_id": "\(item.claimed.eventID)", "error": "\(error)"])
                }
                progress.recorded([item])
            }
            return true
        }
    }

    private func store(_ finished: [WebhookDeliveries.Finished]) async throws {
        let disabled = try await database.withConnection { connection in
            try await WebhookDeliveries.record(finished, policy: settings.policy, on: connection)
        }
        for id in disabled { logger.warning("webhooks.subscription.disabled", metadata: ["webhook.subscription": "\(id)"]) }
    }

    private func claim(holding: [String: Int], room: Int) async -> [WebhookDeliveries.Claimed] {
        guard room > 0 else { return [] }
        do {
            return try await database.withConnection { connection in
                try await WebhookDeliveries.claim(
                    on: connection, limit: room, perSubscription: settings.prefetch,
                    perFailingSubscription: settings.perFailingSubscriptionConcurrency, holding: holding, lease: settings.lease, sealer: settings.sealer)
            }
        } catch {
            logger.warning("webhooks.claim.failed", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: settings.failureBackoff)
            return []
        }
    }

    /// Gives leased deliveries that were never sent back, due at once.
    private func release(_ deliveries: [WebhookDeliveries.Claimed]) async {
        guard !deliveries.isEmpty else { return }
        do {
            try await database.withConnection { try await WebhookDeliveries.release(deliveries, on: $0) }
        } catch {
            logger.notice("webhooks.release.failed", metadata: ["error": "\(error)", "deliveries": "\(deliveries.count)"])
        }
    }

    /// Seals what was stored in clear before `WARREN_SECRETS_KEY` was set, or under a key
    /// being rotated out. A failure is logged and the dispatcher goes on: secrets it can
    /// open still sign, and the next start tries again.
    private func sealStoredSecrets() async {
        guard settings.sealer.seals else { return }
        do {
            let (sealed, unreadable) = try await WebhookSubscriptions(database: database, destinations: destinations, sealer: settings.sealer)
                .sealStoredSecrets()
            if sealed > 0 { logger.notice("webhooks.secrets.sealed", metadata: ["secrets": "\(sealed)"]) }
            for id in unreadable {
                logger.error(
                    "webhooks.secret.unreadable",
                    metadata: ["webhook.subscription": "\(id)", "reason": "sealed under a key not in WARREN_SECRETS_KEY; its deliveries fail until it is rotated"])
            }
        } catch {
            logger.warning("webhooks.secrets.seal.failed", metadata: ["error": "\(error)"])
        }
    }

    /// Beside the loop: the planner's statistics are out of date (`StatisticsRefresh`).
    private func analyze(_ progress: Progress) async {
        let start = ContinuousClock.now
        do {
            let rows = try await database.withConnection { try await WebhookDeliveries.analyze(on: $0) }
            progress.analyzedRows.store(rows, ordering: .relaxed)
            logger.debug(
                "webhooks.statistics.refreshed", metadata: ["rows": "\(rows)", "duration_ms": "\((ContinuousClock.now - start).inSeconds * 1000)"])
        } catch {
            logger.notice("webhooks.statistics.failed", metadata: ["error": "\(error)"])
        }
    }

    private func prune() async {
        do {
            try await database.withConnection { try await WebhookDeliveries.prune(olderThan: settings.retention, on: $0) }
        } catch {
            logger.warning("webhooks.prune.failed", metadata: ["error": "\(error)"])
        }
    }

    /// Forwards `NOTIFY warren_webhooks` to the loop until cancelled; while the LISTEN
    /// connection is down the loop still polls.
    private func listen(_ progress: Progress) async {
        let listener = PostgresListener(
            conninfo: conninfo, channel: WebhookDeliveries.notificationChannel, retryInterval: .seconds(5), logger: logger
        ) {
            progress.notified.store(true, ordering: .relaxed)
            progress.wakeup.signal()
        }
        try? await listener.run()
    }
}
