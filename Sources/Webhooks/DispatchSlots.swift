/// Which leased deliveries a dispatcher sends next and how many more it may lease, decided
/// without I/O (`DispatchSlotsTests`).
///
/// Per subscription it holds what it leased until its request ended: at most `prefetch`
/// for a healthy subscription and `perFailingSubscription` for one failing since its last
/// success, so a dead endpoint holds few rows. Attempts waiting to be recorded count only
/// towards the room in all (a slow recording slows every subscription alike, not the
/// busiest one most). It sends at most
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
    /// Queued or in flight.
    private var held: [String: Int] = [:]
    /// Finished, not recorded yet.
    private var unrecorded = 0
    private var failing: [String: Bool] = [:]
    /// Subscriptions whose last claim filled their room: more may be due, so they are
    /// claimed for again as soon as they run low. The others wait for a notification or
    /// the poll.
    private var busy: Set<String> = []
    /// Subscriptions the fan-out stored deliveries due for, for lack of room, with the
    /// number of the latest such mark: no more of theirs are handed over past the due ones
    /// (which would starve those) until a claim begun after the mark comes back with room
    /// to spare, having taken what was due.
    private var backlog: [String: UInt64] = [:]
    private var marks: UInt64 = 0
    /// Subscriptions with queued deliveries, in the order they take turns.
    private var turns: [String] = []
    private(set) var totalInFlight = 0

    init(limits: Limits) {
        self.limits = limits
    }

    /// Everything held, including attempts not recorded yet.
    var totalHeld: Int { held.values.reduce(0, +) + unrecorded }

    /// What each subscription holds: the claim leases at most its limit minus this.
    var holding: [String: Int] { held }

    /// The most a subscription may hold.
    func limit(failing: Bool) -> Int { failing ? limits.perFailingSubscription : limits.prefetch }

    /// What a claim starts from: `holding`, and the last backlog mark made before it.
    var claimStart: (holding: [String: Int], mark: UInt64) { (held, marks) }

    /// Whether a subscription that was still finding work, or has a backlog, has used half
    /// of its room.
    /// Asked after every request (no set is built for it).
    var wantsClaim: Bool {
        func low(_ id: String) -> Bool { (held[id] ?? 0) <= limit(failing: failing[id] ?? false) / 2 }
        return busy.contains(where: low) || backlog.keys.contains(where: low)
    }

    /// Records a claim's result; `asked` and `mark` are `claimStart` as it began, and
    /// `complete` says the claim was not cut short by the room in all (so a subscription
    /// it brought fewer than its room has nothing more due).
    mutating func leased(_ claimed: [WebhookDeliveries.Claimed], asked: [String: Int], mark: UInt64 = 0, complete: Bool = false) {
        var got: [String: Int] = [:]
        for delivery in claimed {
            hold(delivery)
            got[delivery.subscriptionID, default: 0] += 1
        }
        for id in Set(asked.keys).union(got.keys).union(busy).union(backlog.keys) {
            let room = limit(failing: failing[id] ?? false) - (asked[id] ?? 0)
            guard room > 0 else { continue }
            if (got[id] ?? 0) >= room {
                busy.insert(id)
            } else {
                busy.remove(id)
                if complete, let marked = backlog[id], marked <= mark { backlog[id] = nil }
            }
        }
    }

    /// Which of the deliveries a fan-out is about to store (their subscriptions, in order)
    /// it may lease for this dispatcher at once (`DeliveryHandoff`): as many of each
    /// subscription as its room (`prefetch` less what it holds), and `maximumHeld` in all;
    /// none of a subscription that is failing (the fan-out's statement checks that again
    /// for subscriptions this dispatcher holds none of) or has a backlog. The rest are
    /// stored due, for a claim; those left for lack of room give their subscription a
    /// backlog.
    mutating func handoffPlan(_ subscriptions: [String], maximumHeld: Int) -> [Bool] {
        var total = totalHeld
        var taken: [String: Int] = [:]
        return subscriptions.map { id in
            // A failing subscription's deliveries wait for a claim, which gives it fewer slots.
            guard backlog[id] == nil, failing[id] != true else { return false }
            guard total < maximumHeld, taken[id, default: 0] < limits.prefetch - (held[id] ?? 0) else {
                marks += 1
                backlog[id] = marks
                return false
            }
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

    /// A request ended: its slot and its room are free; the attempt counts in all until
    /// it is recorded.
    mutating func sent(_ delivery: WebhookDeliveries.Claimed) {
        inFlight[delivery.subscriptionID, default: 1] -= 1
        if inFlight[delivery.subscriptionID] == 0 { inFlight[delivery.subscriptionID] = nil }
        totalInFlight -= 1
        release(delivery.subscriptionID)
        unrecorded += 1
    }

    /// Attempts recorded (or let go).
    mutating func recorded(_ count: Int) {
        unrecorded -= count
    }

    private mutating func release(_ id: String) {
        held[id, default: 1] -= 1
        if held[id] == 0 {
            held[id] = nil
            failing[id] = nil
        }
    }

    /// Queued deliveries never sent (shutdown): they stay leased in the database and are
    /// sent again when the lease runs out.
    mutating func dropQueued() -> [WebhookDeliveries.Claimed] {
        var dropped: [WebhookDeliveries.Claimed] = []
        for (id, queue) in queued {
            dropped += queue
            for _ in queue { release(id) }
        }
        queued.removeAll()
        turns.removeAll()
        return dropped
    }
}
