/// When the dispatcher should `ANALYZE` the deliveries table itself.
///
/// `warren_webhook_deliveries` fills and drains like a queue. Between bursts autovacuum
/// records it as (nearly) empty, and PostgreSQL then plans the claim and record
/// statements for a table of a few rows: sequential scans and nested loops over every
/// pending row, kept as the session's cached plan. When a burst comes, each statement
/// walks the whole backlog, the backlog grows faster than it is sent, and deliveries
/// arrive seconds to minutes late until autovacuum next analyzes the table (its visits
/// are up to `autovacuum_naptime`, a minute, apart). Measured in `Benchmarks/README.md`.
///
/// So the dispatcher analyzes the table itself (a fresh `ANALYZE` also drops cached
/// plans), at most once per `minimumInterval`, when (`backlog` is the dispatcher's
/// prefetch: a claim that leased that many found more due than one subscription holds)
/// - it has leased more deliveries since its last refresh (claimed, or handed over by the
///   fan-out) than the statistics knew rows (at least `backlog`): the table outgrew what
///   the planner believes, or
/// - one claim leased at least `backlog` deliveries and the last refresh is `interval`
///   old: a backlog lasts, and the share of pending rows may have changed.
struct StatisticsRefresh {
    let backlog: Int
    let interval: Duration
    let minimumInterval: Duration

    private var last: ContinuousClock.Instant?
    private var leasedSince = 0

    init(backlog: Int = 64, interval: Duration = .seconds(30), minimumInterval: Duration = .seconds(1)) {
        self.backlog = backlog
        self.interval = interval
        self.minimumInterval = minimumInterval
    }

    /// A claim leased `count` deliveries at `now`, and the fan-out handed over `handedOff`
    /// since the last call; `knownRows` is what the table held when it was last analyzed
    /// (`pg_class.reltuples`, 0 if unknown). True when the table should be analyzed now;
    /// the refresh is then counted as done.
    mutating func claimed(_ count: Int, handedOff: Int = 0, at now: ContinuousClock.Instant, knownRows: Int) -> Bool {
        leasedSince += count + handedOff
        let since = last.map { now - $0 }
        if let since, since < minimumInterval { return false }
        let outgrown = leasedSince >= max(backlog, knownRows)
        let lastingBacklog = count >= backlog && since.map { $0 >= interval } ?? true
        guard outgrown || lastingBacklog else { return false }
        last = now
        leasedSince = 0
        return true
    }
}
