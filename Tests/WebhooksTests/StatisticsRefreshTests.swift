import Testing
@testable import Webhooks

@Suite struct StatisticsRefreshTests {
    /// Claims in order, `(deliveries leased, seconds after the start, rows the last analysis saw)`:
    /// which of them said to analyze.
    static func analyzed(_ refresh: inout StatisticsRefresh, _ claims: [(Int, Double, Int)]) -> [Bool] {
        let start = ContinuousClock.now
        return claims.map { count, seconds, rows in refresh.claimed(count, at: start + .milliseconds(Int64(seconds * 1000)), knownRows: rows) }
    }

    @Test func aQuietTableIsNeverAnalyzed() {
        var refresh = StatisticsRefresh(backlog: 32)
        let fired = Self.analyzed(&refresh, (0..<600).map { (($0 % 3), Double($0), 5_000) })
        #expect(!fired.contains(true), "a few deliveries now and then")
    }

    @Test func theFirstBacklogIsAnalyzedAtOnce() {
        var refresh = StatisticsRefresh(backlog: 32)
        #expect(Self.analyzed(&refresh, [(4, 0, 0), (40, 0.01, 0)]) == [false, true], "the statistics said empty and a backlog came")
    }

    @Test func aGrowingTableIsAnalyzedEachTimeItOutgrewTheStatisticsButNotMoreThanOncePerSecond() {
        var refresh = StatisticsRefresh(backlog: 32)
        let fired = Self.analyzed(
            &refresh,
            [
                (32, 0, 0),
                // The analysis saw 100 rows: again once more than 100 were leased since.
                (31, 1.5, 100), (31, 2.0, 100), (31, 2.1, 100), (31, 2.2, 100),
                // Outgrown again within the second: waits for the second to pass.
                (31, 2.5, 20), (1, 3.3, 20),
                // A big table is not analyzed again for the growth a small burst gives it.
                (31, 10, 1_000_000),
            ])
        #expect(fired == [true, false, false, false, true, false, true, false])
    }

    @Test func aLastingBacklogIsAnalyzedEveryIntervalEvenInABigTable() {
        var refresh = StatisticsRefresh(backlog: 32, interval: .seconds(30))
        let fired = Self.analyzed(
            &refresh,
            [
                (32, 0, 1_000_000),  // never analyzed by this dispatcher: at once
                (32, 10, 1_000_000), (32, 29.9, 1_000_000),
                (31, 31, 1_000_000),  // a claim short of a backlog
                (32, 31, 1_000_000),
            ])
        #expect(fired == [true, false, false, false, true])
    }

    @Test func handedOverDeliveriesCountTowardsOutgrowingTheStatistics() {
        var refresh = StatisticsRefresh(backlog: 32)
        let start = ContinuousClock.now
        let first = refresh.claimed(0, handedOff: 40, at: start, knownRows: 0)
        #expect(first, "the fan-out stored 40 leased into a table believed empty")
        // Claims (each poll) find nothing; the hand-offs alone outgrow the 1,000 rows seen.
        let second = refresh.claimed(0, handedOff: 600, at: start + .seconds(2), knownRows: 1_000)
        let third = refresh.claimed(0, handedOff: 600, at: start + .seconds(3), knownRows: 1_000)
        #expect(!second && third)
    }
}
