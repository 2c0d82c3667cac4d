import Locking
import Logging
import struct Synchronization.Atomic

/// The link between the fan-out consumer and the dispatcher of one process (`warren run`,
/// `warren consume webhooks.delivery`): deliveries the fan-out stores already leased to
/// this dispatcher reach it straight after the fan-out's transaction commits, with no
/// `NOTIFY` and no claim in between.
///
/// The dispatcher attaches while it runs and says which deliveries it has room for
/// (`DispatchSlots.handoffPlan`); the fan-out stores those with the dispatcher's lease and
/// the attempt counted, as a claim would, and the others due at once for any dispatcher's
/// claim. So nothing depends on the hand-off arriving: if the process dies between the
/// commit and the send, or the dispatcher stopped meanwhile, a leased delivery is sent
/// once its lease runs out, like one claimed and never sent.
public final class DeliveryHandoff: Sendable {
    /// What an attached dispatcher provides.
    struct Receiver: Sendable {
        /// How long a delivery stored for it stays leased.
        var lease: Duration
        var sealer: SecretSealer
        /// `DispatchSlots.handoffPlan` for these subscriptions, one per delivery in order.
        var plan: @Sendable (_ subscriptions: [String]) -> [Bool]
        /// Takes in the deliveries stored for it, committed.
        var take: @Sendable (_ deliveries: [WebhookDeliveries.Claimed]) -> Void
    }

    /// One delivery the fan-out stored leased, as its statement returned it.
    struct Stored: Sendable {
        var subscriptionID: String
        var eventID: String
        var webhookID: String
        var payload: String
        var traceparent: String?
        var url: String
        var secret: String
        var previousSecret: String?
    }

    private let receiver = Mutex<Receiver?>(nil)
    private let logger: Logger
    /// Deliveries handed over so far.
    let handedOver = Atomic<Int>(0)

    public init(logger: Logger) {
        self.logger = logger
    }

    func attach(_ receiver: Receiver) {
        self.receiver.withLock { $0 = receiver }
    }

    func detach() {
        receiver.withLock { $0 = nil }
    }

    var isAttached: Bool { receiver.withLock { $0 != nil } }

    /// The lease and which of these deliveries to store leased, or nil when no dispatcher
    /// is attached (all are stored due).
    func plan(_ subscriptions: [String]) -> (lease: Duration, leased: [Bool])? {
        guard let receiver = receiver.withLock({ $0 }) else { return nil }
        return (receiver.lease, receiver.plan(subscriptions))
    }

    /// Hands over what a committed fan-out stored leased. With the dispatcher gone
    /// meanwhile, they wait out their lease.
    func deliver(_ stored: [Stored]) {
        guard !stored.isEmpty else { return }
        guard let receiver = receiver.withLock({ $0 }) else {
            logger.notice("webhooks.handoff.missed", metadata: ["deliveries": "\(stored.count)", "reason": "the dispatcher stopped; sent when their lease runs out"])
            return
        }
        handedOver.add(stored.count, ordering: .relaxed)
        var opener = SecretOpener(receiver.sealer)
        receiver.take(
            stored.map { delivery in
                let (secrets, unreadable) = opener.open(current: delivery.secret, previous: delivery.previousSecret, subscription: delivery.subscriptionID)
                return WebhookDeliveries.Claimed(
                    subscriptionID: delivery.subscriptionID, eventID: delivery.eventID, webhookID: delivery.webhookID, attempt: 1,
                    payload: delivery.payload, traceparent: delivery.traceparent, url: delivery.url, secrets: secrets, failing: false,
                    unreadableSecret: unreadable)
            })
    }
}
