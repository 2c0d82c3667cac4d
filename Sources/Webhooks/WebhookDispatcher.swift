import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import WarrenCore

public struct WebhookDispatcherSettings: Sendable {
    public var policy = DeliveryPolicy()
    /// Requests in flight to one subscription at once (per dispatcher process).
    public var perSubscriptionConcurrency = 8
    /// Requests in flight in all, so endpoints that hang take only their own slots.
    public var concurrency = 128
    /// Requests per second in all, if limited.
    public var ratePerSecond: Int? = 5_000
    /// How long to sleep when idle if no notification comes (and the only wake-up when
    /// LISTEN is unavailable): retries fall due without one.
    public var pollInterval: Duration = .seconds(1)
    /// Finished deliveries and their log are deleted after this long.
    public var retention: Duration = .seconds(30 * 86_400)
    public var pruneInterval: Duration = .seconds(600)
    /// Pause after the database failed before trying again.
    public var failureBackoff: Duration = .seconds(1)

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
/// It leases due deliveries (`WebhookDeliveries.claim`), sends each in its own task
/// (at most `perSubscriptionConcurrency` per subscription and `concurrency` in all, so a
/// slow endpoint delays only itself), and records finished attempts in batches. It wakes
/// on `NOTIFY warren_webhooks` (a fan-out or a retry request), on a finished send, and
/// every `pollInterval`. On SIGTERM it stops claiming, lets the requests in flight finish
/// (each within the timeout) and records them; anything unrecorded stays pending and is
/// sent again when its lease runs out, with the same `webhook-id`.
public struct WebhookDispatcher: Service {
    let settings: WebhookDispatcherSettings
    let database: PostgresPool
    let conninfo: String
    let destinations: DestinationGuard
    let logger: Logger

    public init(settings: WebhookDispatcherSettings, database: PostgresPool, conninfo: String, destinations: DestinationGuard, logger: Logger) {
        self.settings = settings
        self.database = database
        self.conninfo = conninfo
        self.destinations = destinations
        self.logger = logger
    }

    /// What the loop and the sending tasks share.
    private final class Progress: Sendable {
        struct State {
            var inFlight: [String: Int] = [:]
            var total = 0
            var finished: [WebhookDeliveries.Finished] = []
        }

        let state = Mutex(State())
        let wakeup = Wakeup()

        func started(_ subscription: String) {
            state.withLock {
                $0.inFlight[subscription, default: 0] += 1
                $0.total += 1
            }
        }

        func finished(_ item: WebhookDeliveries.Finished) {
            state.withLock { $0.finished.append(item) }
            wakeup.signal()
        }

        /// Takes the finished attempts; their slots are freed once recorded.
        func takeFinished() -> [WebhookDeliveries.Finished] {
            state.withLock { state in
                defer { state.finished.removeAll() }
                return state.finished
            }
        }

        func release(_ items: [WebhookDeliveries.Finished]) {
            state.withLock { state in
                for item in items {
                    let id = item.claimed.subscriptionID
                    state.inFlight[id, default: 1] -= 1
                    if state.inFlight[id] == 0 { state.inFlight[id] = nil }
                    state.total -= 1
                }
            }
        }

        func putBack(_ items: [WebhookDeliveries.Finished]) {
            state.withLock { $0.finished.insert(contentsOf: items, at: 0) }
        }

        var snapshot: (inFlight: [String: Int], total: Int) { state.withLock { ($0.inFlight, $0.total) } }
    }

    public func run() async throws {
        let sender = WebhookSender(destinations: destinations, timeout: settings.policy.timeout)
        let limiter = settings.ratePerSecond.map { RateLimiter(rate: $0, per: .seconds(1)) }
        let progress = Progress()
        logger.info("webhooks.dispatcher.started", metadata: ["webhooks.guard": "\(destinations.allowPrivate ? "lifted" : "on")"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen(wakeup: progress.wakeup) }
            await withGracefulShutdownHandler {
                var nextPrune = ContinuousClock.now + .seconds(5)
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    let recorded = await record(progress)
                    let claimed = await claim(progress)
                    for delivery in claimed {
                        progress.started(delivery.subscriptionID)
                        group.addTask { await self.send(delivery, sender: sender, limiter: limiter, progress: progress) }
                    }
                    if ContinuousClock.now >= nextPrune {
                        await prune()
                        nextPrune = ContinuousClock.now + settings.pruneInterval
                    }
                    if claimed.isEmpty && !recorded { await progress.wakeup.wait(timeout: settings.pollInterval) }
                }
            } onGracefulShutdown: {
                progress.wakeup.signal()
            }
            // Draining: no more claims; the requests in flight end within the timeout.
            while progress.snapshot.total > 0 && !Task.isCancelled {
                if !(await record(progress)) { await progress.wakeup.wait(timeout: settings.failureBackoff) }
            }
            group.cancelAll()
        }
        await sender.shutdown()
        logger.info("webhooks.dispatcher.stopped")
    }

    private func send(_ delivery: WebhookDeliveries.Claimed, sender: WebhookSender, limiter: RateLimiter?, progress: Progress) async {
        try? await limiter?.acquire()
        let attemptedAt = Date()
        let start = ContinuousClock.now
        let result = await sender.send(delivery)
        let latency = ContinuousClock.now - start
        let finished = WebhookDeliveries.Finished(
            claimed: delivery, attemptedAt: attemptedAt, latency: latency, result: result,
            decision: settings.policy.decide(result, attempt: delivery.attempt))
        progress.finished(finished)
        guard finished.decision != .delivered else { return }
        logger.notice(
            "webhooks.delivery.failed",
            metadata: [
                "webhook.subscription": "\(delivery.subscriptionID)", "event_id": "\(delivery.eventID)", "attempt": "\(delivery.attempt)",
                "outcome": "\(finished.outcome)", "error": "\(finished.error ?? "")",
            ])
    }

    /// Records what finished; false when there was nothing (or the database failed).
    private func record(_ progress: Progress) async -> Bool {
        let finished = progress.takeFinished()
        guard !finished.isEmpty else { return false }
        do {
            let disabled = try await database.withConnection { connection in
                try await WebhookDeliveries.record(finished, policy: settings.policy, on: connection)
            }
            progress.release(finished)
            for id in disabled { logger.warning("webhooks.subscription.disabled", metadata: ["webhook.subscription": "\(id)"]) }
            return true
        } catch {
            // Kept and recorded on the next pass; their slots stay taken meanwhile.
            progress.putBack(finished)
            logger.warning("webhooks.record.failed", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: settings.failureBackoff)
            return false
        }
    }

    private func claim(_ progress: Progress) async -> [WebhookDeliveries.Claimed] {
        let (inFlight, total) = progress.snapshot
        let room = settings.concurrency - total
        guard room > 0 else { return [] }
        let free = inFlight.mapValues { settings.perSubscriptionConcurrency - $0 }
        let lease = settings.policy.timeout + .seconds(15)
        do {
            return try await database.withConnection { connection in
                try await WebhookDeliveries.claim(
                    on: connection, limit: room, perSubscription: settings.perSubscriptionConcurrency, free: free, lease: lease)
            }
        } catch {
            logger.warning("webhooks.claim.failed", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: settings.failureBackoff)
            return []
        }
    }

    private func prune() async {
        do {
            try await database.withConnection { try await WebhookDeliveries.prune(olderThan: settings.retention, on: $0) }
        } catch {
            logger.warning("webhooks.prune.failed", metadata: ["error": "\(error)"])
        }
    }

    /// Forwards `NOTIFY warren_webhooks` to the loop until cancelled; without a LISTEN
    /// connection the loop still polls.
    private func listen(wakeup: Wakeup) async {
        var listener: PostgresListener?
        while !Task.isCancelled {
            if listener == nil {
                listener = try? await PostgresListener.listen(to: conninfo, channel: WebhookDeliveries.notificationChannel)
                if listener == nil {
                    try? await Task.sleep(for: .seconds(5))
                    continue
                }
            }
            do {
                if try await listener!.wait(timeout: settings.pollInterval) { wakeup.signal() }
            } catch {
                try? await Task.sleep(for: settings.pollInterval)
            }
        }
        await listener?.close()
    }
}

/// A wake-up call that is never lost: a signal with nobody waiting is kept for the next wait.
final class Wakeup: Sendable {
    private let state = Mutex<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signalled = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next signal (or a kept one), or after `timeout`.
    func wait(timeout: Duration) async {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { self.signal() }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.signalled {
                    state.signalled = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
    }
}
