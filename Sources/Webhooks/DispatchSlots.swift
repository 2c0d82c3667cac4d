/// Which leased deliveries a dispatcher sends next and how many more it may lease, decided
/// without I/O (`DispatchSlotsTests`).
///
/// Per subscription it holds what it leased until each attempt is recorded: at most
/// `prefetch` for a healthy subscription and `perFailingSubscription` for one failing
/// since its last success, so a dead endpoint holds few rows. It sends at most
/// `perSubscription` (healthy) or `perFailingSubscription` (failing) of a subscription at
/// once and `total` in all, taking subscriptions in turn, so a slow endpoint only ever
/// waits on its own slots. Leasing ahead (prefetch) means one claim per several requests
/// instead of one per finished request.
struct DispatchSlots {
    struct Limits: Equatable {
        var perSubscription: Int
        var perFailingSubscription: Int
        var prefetch: Int
        var total: Int
    }

    let limits: Limits
    private var queued: [String: [WebhookDeliveries.Claimed]] = [:]
    private var inFlight: [String: Int] = [:]
    /// Queued, in flight, or finished and not yet recorded.
    private var held: [String: Int] = [:]
    private var failing: [String: Bool] = [:]
    /// Subscriptions whose last claim filled their room: more may be due, so they are
    /// claimed for again as soon as they run low. The others wait for a notification or
    /// the poll.
    private var busy: Set<String> = []
    /// Subscriptions with queued deliveries, in the order they take turns.
    private var turns: [String] = []
    private(set) var totalInFlight = 0

    init(limits: Limits) {
        self.limits = limits
    }

    var totalHeld: Int { held.values.reduce(0, +) }

    /// What each subscription holds: the claim leases at most its limit minus this.
    var holding: [String: Int] { held }

    /// The most a subscription may hold.
    func limit(failing: Bool) -> Int { failing ? limits.perFailingSubscription : limits.prefetch }

    /// Whether a subscription that was still finding work has used half of its room.
    var wantsClaim: Bool {
        busy.contains { id in (held[id] ?? 0) <= limit(failing: failing[id] ?? false) / 2 }
    }

    /// Records a claim's result; `asked` is `holding` as passed to it.
    mutating func leased(_ claimed: [WebhookDeliveries.Claimed], asked: [String: Int]) {
        var got: [String: Int] = [:]
        for delivery in claimed {
            hold(delivery)
            got[delivery.subscriptionID, default: 0] += 1
        }
        for id in Set(asked.keys).union(got.keys).union(busy) {
            let room = limit(failing: failing[id] ?? false) - (asked[id] ?? 0)
            if room > 0, (got[id] ?? 0) >= room { busy.insert(id) } else if room > 0 { busy.remove(id) }
        }
    }

    /// Which of the deliveries a fan-out is about to store (their subscriptions, in order)
    /// it may lease for this dispatcher at once (`DeliveryHandoff`): as many of each
    /// subscription as its room (`prefetch` less what it holds; none while it fails, which
    /// the fan-out's statement checks again for subscriptions this dispatcher holds none
    /// of), and `maximumHeld` in all. The rest are stored due, for a claim.
    func handoffPlan(_ subscriptions: [String], maximumHeld: Int) -> [Bool] {
        var total = totalHeld
        var taken: [String: Int] = [:]
        return subscriptions.map { id in
            // A failing subscription's deliveries wait for a claim, which gives it fewer slots.
            guard failing[id] != true, total < maximumHeld, taken[id, default: 0] < limits.prefetch - (held[id] ?? 0) else { return false }
            taken[id, default: 0] += 1
            total += 1
            return true
        }
    }

    /// Takes in deliveries leased as they were stored (`handoffPlan`): held and queued like
    /// claimed ones, leaving alone which subscriptions are claimed for.
    mutating func handedOff(_ deliveries: [WebhookDeliveries.Claimed]) {
        for delivery in deliveries { hold(delivery) }
    }

    private mutating func hold(_ delivery: WebhookDeliveries.Claimed) {
        let id = delivery.subscriptionID
        if queued[id]?.isEmpty ?? true, !turns.contains(id) { turns.append(id) }
        queued[id, default: []].append(delivery)
        held[id, default: 0] += 1
        failing[id] = delivery.failing
    }

    /// The deliveries to send now (at most `maximum`), subscriptions taking turns.
    mutating func nextToSend(maximum: Int = .max) -> [WebhookDeliveries.Claimed] {
        var sending: [WebhookDeliveries.Claimed] = []
        var progressed = true
        while progressed && totalInFlight < limits.total && sending.count < maximum {
            progressed = false
            for id in turns where totalInFlight < limits.total && sending.count < maximum {
                let cap = failing[id] == true ? limits.perFailingSubscription : limits.perSubscription
                guard (inFlight[id] ?? 0) < cap, var queue = queued[id], !queue.isEmpty else { continue }
                sending.append(queue.removeFirst())
                queued[id] = queue
                inFlight[id, default: 0] += 1
                totalInFlight += 1
                progressed = true
            }
            turns.removeAll { queued[$0]?.isEmpty ?? true }
        }
        return sending
    }

    /// A request ended; the delivery stays held until its attempt is recorded.
    mutating func sent(_ delivery: WebhookDeliveries.Claimed) {
        inFlight[delivery.subscriptionID, default: 1] -= 1
        if inFlight[delivery.subscriptionID] == 0 { inFlight[delivery.subscriptionID] = nil }
        totalInFlight -= 1
    }

    /// Attempts recorded (or let go): their deliveries are no longer held.
    mutating func recorded(_ subscriptionIDs: [String]) {
        for id in subscriptionIDs {
            held[id, default: 1] -= 1
            if held[id] == 0 {
                held[id] = nil
                failing[id] = nil
            }
        }
    }

    /// Queued deliveries never sent (shutdown): they stay leased in the database and are
    /// sent again when the lease runs out.
    mutating func dropQueued() -> [WebhookDeliveries.Claimed] {
        var dropped: [WebhookDeliveries.Claimed] = []
        for (id, queue) in queued {
            dropped += queue
            recorded(Array(repeating: id, count: queue.count))
        }
        queued.removeAll()
        turns.removeAll()
        return dropped
    }
}
