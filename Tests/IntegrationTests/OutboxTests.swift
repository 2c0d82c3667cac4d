import AMQP
import Foundation
import Logging
import Messaging
import Operations
import Postgres
import ServiceLifecycle
import Locking
import struct Synchronization.Atomic
import Testing
import Topology
import WarrenCore

extension Integration {
    /// The transactional outbox against the real database and broker: events written in
    /// committed transactions reach the `events` exchange exactly once, whatever the relays
    /// and the broker do; nothing from a rolled-back transaction ever does.
    @Suite struct OutboxTests {
        /// A vhost with the `events` exchange and one sink queue bound to `user.*`, the
        /// migrated database with an empty outbox, and relays run in-process.
        final class Fixture: Sendable {
            let vhost: String
            let url: String
            let amqp: AMQPConnection
            let channel: AMQPChannel
            let database: PostgresPool
            private let relays = Mutex<[(ServiceGroup, Task<Void, any Error>, AMQPConnection)]>([])
            static let sink = "outbox.sink"

            init() async throws {
                vhost = TestEnvironment.uniqueName("outbox")
                try TestEnvironment.services("ctl", "add_vhost", vhost)
                try TestEnvironment.services("ctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
                url = "amqp://guest:guest@127.0.0.1:5672/\(vhost)"
                amqp = try await AMQPConnection.forTests(url: url)
                channel = try await amqp.openChannel()
                try await channel.declareExchange("events")
                try await channel.declareQueue(Self.sink, arguments: ["x-queue-type": "quorum"])
                try await channel.bindQueue(Self.sink, to: "events", routingKey: "user.*")
                database = PostgresPool(conninfo: TestEnvironment.databaseURL, maxConnections: 4, logger: TestEnvironment.logger)
                try await database.withConnection { connection in
                    _ = try await PostgresMigrator(
                        directory: TestEnvironment.repositoryRoot.appendingPathComponent("migrations").path, logger: TestEnvironment.logger
                    ).migrate(on: connection)
                    try await connection.execute("DELETE FROM warren_outbox")
                }
            }

            func startRelay(_ configure: (inout OutboxRelaySettings) -> Void = { _ in }) async throws {
                var settings = OutboxRelaySettings()
                settings.pollInterval = .milliseconds(200)
                settings.failureBackoff = .milliseconds(200)
                settings.publishTimeout = .seconds(5)
                configure(&settings)
                let connection = try await AMQPConnection.forTests(url: url)
                let relay = OutboxRelay(settings: settings, amqp: connection, database: database, conninfo: TestEnvironment.databaseURL, logger: TestEnvironment.logger)
                let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [relay], logger: TestEnvironment.logger))
                relays.withLock { $0.append((group, Task { try await group.run() }, connection)) }
            }

            func tearDown() async {
                for (group, task, connection) in relays.withLock({ relays in defer { relays = [] }; return relays }) {
                    await group.triggerGracefulShutdown()
                    _ = try? await task.value
                    await connection.close()
                }
                await amqp.close()
                await database.close()
                _ = try? TestEnvironment.services("ctl", "delete_vhost", vhost)
            }

            /// Enqueues `events` in transactions of `per`, committed or rolled back.
            func enqueue(_ events: [CloudEvent], per: Int = 10, commit: Bool = true) async throws {
                struct Rollback: Error {}
                for start in stride(from: 0, to: events.count, by: per) {
                    try await database.withConnection { connection in
                        do {
                            try await connection.transaction { connection in
                                for event in events[start..<min(start + per, events.count)] {
                                    try await Outbox.enqueue(event, on: connection)
                                }
                                if !commit { throw Rollback() }
                            }
                        } catch is Rollback {}
                    }
                }
            }

            func sinkDepth() async throws -> Int { Int(try await channel.queueInfo(Self.sink).messageCount) }

            /// Every message id in the sink, in order (the sink is emptied).
            func drainSink() async throws -> [String] {
                var ids: [String] = []
                while let delivery = try await channel.get(queue: Self.sink) {
                    ids.append(delivery.properties.messageID ?? "")
                    try channel.ack(delivery)
                }
                return ids
            }

            func scalar(_ sql: String) async throws -> String? {
                try await database.withConnection { connection in
                    try await connection.query(PostgresQuery(unsafeSQL: sql)).first?.decode(String?.self, at: 0)
                }
            }

            func count(_ condition: String) async throws -> Int {
                try await database.withConnection { connection in
                    Int(try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM warren_outbox WHERE \(condition)")).first!.decode(Int64.self, at: 0))
                }
            }
        }

        static func events(_ count: Int) -> [CloudEvent] {
            (0..<count).map { userCreated("outbox-\($0)") }
        }

        @Test func exactlyTheCommittedEventsReachTheExchangeInOrder() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let committed = Self.events(1_000)
            try await fixture.startRelay()
            try await fixture.enqueue(Array(committed.prefix(500)))
            try await fixture.enqueue(Self.events(100), commit: false)
            try await fixture.enqueue(Array(committed.suffix(500)))

            try await eventually(timeout: .seconds(60), "1,000 events in the sink") { try await fixture.sinkDepth() >= 1_000 }
            // Every row committed as published: none can be published again.
            try await eventually("every row marked published") { try await fixture.count("published_at IS NULL") == 0 }
            #expect(try await fixture.drainSink() == committed.map(\.id))
            #expect(try await fixture.count("published_at IS NULL") == 0)
            #expect(try await fixture.count("true") == 1_000, "rolled-back rows never existed")
        }

        @Test func aNotificationWakesAnIdleRelay() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            try await fixture.startRelay { $0.pollInterval = .seconds(60) }
            // Through once: the relay is past its first pass and waits for the next wake-up.
            let first = userCreated("outbox-first")
            try await fixture.enqueue([first])
            try await eventually("the first event published") { try await fixture.sinkDepth() == 1 }
            #expect(try await fixture.drainSink() == [first.id])
            let event = userCreated("outbox-notified")
            try await fixture.enqueue([event])
            try await eventually(timeout: .seconds(5), "the event published without waiting for a poll") { try await fixture.sinkDepth() == 1 }
            #expect(try await fixture.drainSink() == [event.id])
        }

        @Test func anEventKeepsTheTraceItWasEnqueuedIn() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let trace = TraceContext(traceparent: "00-6bf92f3577b34da6a3ce929d0e0e4738-20f067aa0ba902b9-01", tracestate: "vendor=2")!
            let traced = userCreated("outbox-traced")
            let untraced = userCreated("outbox-untraced")
            try await TraceContext.$current.withValue(trace) { try await fixture.enqueue([traced]) }
            try await fixture.enqueue([untraced])
            try await fixture.startRelay()
            try await eventually(timeout: .seconds(10), "both published") { try await fixture.sinkDepth() == 2 }
            var headers: [String: (String?, String?)] = [:]
            while let delivery = try await fixture.channel.get(queue: Fixture.sink) {
                func text(_ name: String) -> String? {
                    if case .string(let value)? = delivery.properties.headers?[name] { value } else { nil }
                }
                headers[delivery.properties.messageID ?? ""] = (text("traceparent"), text("tracestate"))
                try fixture.channel.ack(delivery)
            }
            #expect(headers[traced.id]?.0 == trace.traceparent && headers[traced.id]?.1 == "vendor=2", "\(headers)")
            #expect(headers[untraced.id].map { $0.0 == nil } == true, "no trace invented for an event enqueued outside one")
        }

        /// LISTEN could not be set up at start: the relay tries again once the database is
        /// back, so a new row is published on its notification, not on the next poll.
        @Test func aRelayStartedWhileTheDatabaseIsDownListensOnceItIsBack() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            try TestEnvironment.services("stop", "postgres")
            do {
                try await fixture.startRelay {
                    $0.pollInterval = .seconds(60)
                    $0.listenRetryInterval = .milliseconds(500)
                }
                try await Task.sleep(for: .seconds(1))
            } catch {
                _ = try? TestEnvironment.services("start", "postgres")
                throw error
            }
            try TestEnvironment.services("start", "postgres")
            // Every connection from before the restart is gone: a LISTEN backend now is the relay's.
            try await eventually(timeout: .seconds(10), "the relay listens again") {
                try await fixture.database.withConnection { connection in
                    try await connection.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN%'").count == 1
                }
            }
            let event = userCreated("outbox-listen-retried")
            try await fixture.enqueue([event])
            try await eventually(timeout: .seconds(5), "the event published without waiting for a poll") { try await fixture.sinkDepth() == 1 }
            #expect(try await fixture.drainSink() == [event.id])
        }

        @Test func twoRelaysAtOncePublishEachRowOnce() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let committed = Self.events(1_000)
            try await fixture.enqueue(committed, per: 100)
            try await fixture.startRelay { $0.batchSize = 25 }
            try await fixture.startRelay { $0.batchSize = 25 }

            try await eventually(timeout: .seconds(60), "1,000 events in the sink") { try await fixture.sinkDepth() >= 1_000 }
            // Every row committed as published: no relay can publish one again.
            try await eventually("every row marked published") { try await fixture.count("published_at IS NULL") == 0 }
            let ids = try await fixture.drainSink()
            #expect(ids.count == 1_000)
            #expect(Set(ids) == Set(committed.map(\.id)))
        }

        @Test func aBrokerRestartDuringTheRelayLosesNothing() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            try await fixture.startRelay { $0.batchSize = 20 }
            var committed = Self.events(200)
            try await fixture.enqueue(committed)
            try await eventually("the relay is publishing") { try await fixture.count("published_at IS NOT NULL") >= 50 }

            // Keep writing events while the broker stops and starts again.
            let restarted = Atomic<Bool>(false)
            let restart = Task.detached {
                defer { restarted.store(true, ordering: .releasing) }
                try TestEnvironment.services("restart", "rabbitmq")
            }
            var pendingDuringOutage = 0
            while !restarted.load(ordering: .acquiring) {
                let batch = (0..<10).map { _ in userCreated("outbox-\(UUID().uuidString.prefix(8))") }
                try await fixture.enqueue(batch)
                committed += batch
                pendingDuringOutage = max(pendingDuringOutage, try await fixture.count("published_at IS NULL"))
                try await Task.sleep(for: .milliseconds(100))
            }
            try await restart.value
            let after = Self.events(100)
            try await fixture.enqueue(after)
            committed += after
            #expect(pendingDuringOutage > 0, "events were waiting while the broker was away")

            try await eventually(timeout: .seconds(90), "every row published after the restart") {
                try await fixture.count("published_at IS NULL") == 0
            }
            try await eventually(timeout: .seconds(30), "every event in the sink") { try await fixture.sinkDepth() >= committed.count }
            let ids = try await fixture.drainSink()
            #expect(Set(ids) == Set(committed.map(\.id)), "nothing lost (a duplicate from an unconfirmed publish is allowed)")
        }

        @Test func anUnroutableEventIsParkedAndTheRestGoOn() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let first = userCreated("outbox-a")
            let orphan = CloudEvent(type: "orphan.happened", source: "/tests", data: ["x": 1])
            let last = userCreated("outbox-b")
            try await fixture.enqueue([first, orphan, last], per: 1)
            try await fixture.startRelay()

            try await eventually("the routable events published") { try await fixture.sinkDepth() == 2 }
            try await eventually("the orphan parked") { try await fixture.count("parked_at IS NOT NULL") == 1 }
            #expect(try await fixture.drainSink() == [first.id, last.id])
            #expect(try await fixture.count("event_id = '\(orphan.id)' AND park_reason LIKE 'unroutable%' AND published_at IS NULL") == 1)
            // A later event goes through, in id order after the orphan: that pass did not
            // take the parked row again (re-parking it would move its parked_at).
            let after = userCreated("outbox-c")
            let parkedAtBefore = try await fixture.scalar("SELECT parked_at::text FROM warren_outbox WHERE event_id = '\(orphan.id)'")
            try await fixture.enqueue([after])
            try await eventually("the later event published") { try await fixture.sinkDepth() == 1 }
            #expect(try await fixture.drainSink() == [after.id])
            #expect(try await fixture.scalar("SELECT parked_at::text FROM warren_outbox WHERE event_id = '\(orphan.id)'") == parkedAtBefore, "a parked event is not retried")

            // Ops list it, fix the cause (a binding), and put it back in line.
            let (listed, listing) = try HTTPServerTests.warren(["outbox", "parked", "--json"])
            #expect(listed == 0, "\(listing)")
            let rows = try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [[String: Any]] ?? []
            let row = try #require(rows.first { $0["event_id"] as? String == orphan.id }, "\(listing)")
            #expect((row["reason"] as? String)?.hasPrefix("unroutable") == true && row["event_type"] as? String == "orphan.happened")
            let id = try #require(row["id"] as? Int)
            try await fixture.channel.bindQueue(Fixture.sink, to: "events", routingKey: "orphan.*")
            let (retried, output) = try HTTPServerTests.warren(["outbox", "retry", "--id", "\(id)"])
            #expect(retried == 0 && output.contains("re-queued 1 row: \(id)"), "\(output)")
            try await eventually("the retried row published") { try await fixture.sinkDepth() == 1 }
            #expect(try await fixture.drainSink() == [orphan.id])
            #expect(try await fixture.count("event_id = '\(orphan.id)' AND published_at IS NOT NULL AND park_reason IS NULL") == 1)

            // A row that is not parked: one line on stderr, exit 1.
            let (refused, error) = try HTTPServerTests.warren(["outbox", "retry", "--id", "\(id)"])
            #expect(refused == 1 && error.contains("warren: not parked (or no such row): \(id)"), "\(error)")
            let (usage, _) = try HTTPServerTests.warren(["outbox", "retry"])
            #expect(usage != 0)
        }

        /// A service in another language writes rows itself: what it wrote is what is
        /// published, byte for byte — extension attributes, big integers, nanosecond times,
        /// key order and spacing included (the relay used to encode the event again).
        @Test func theRelayPublishesTheStoredBytesAsTheyAre() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let id = UUID().uuidString.lowercased()
            let stored = """
                {"specversion": "1.0", "type":"user.created","source":"/billing", "id":"\(id)",\
                "time":"2026-12-01T10:00:00.123456789Z","partnerref":"abc-1","datacontenttype":"application/json",\
                "data":{"id":"u-\(id)","name":"Ada","email":"ada@example.com","balance":12345678901234567890123,"ratio":0.1000}}
                """
            _ = try await fixture.database.withConnection { connection in
                try await connection.execute("INSERT INTO warren_outbox (event_id, event_type, event) VALUES (\(id), 'user.created', \(stored))")
            }
            try await fixture.startRelay()
            try await eventually("published") { try await fixture.sinkDepth() == 1 }
            let delivery = try #require(try await fixture.channel.get(queue: Fixture.sink))
            try fixture.channel.ack(delivery)
            #expect(String(decoding: delivery.body, as: UTF8.self) == stored)
            #expect(delivery.properties.messageID == id && delivery.routingKey == "user.created" && delivery.properties.appID == "/billing")
        }

        /// An id longer than an AMQP short string cannot be published. enqueue refuses it;
        /// a row that got in anyway (an older Warren, a hand-written INSERT) is parked with
        /// the reason and the rows behind it go on (it used to stall the outbox for good).
        @Test func anEventThatCannotBeEncodedIsRefusedOrParkedAndTheRestGoOn() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            var poison = userCreated("outbox-poison")
            poison.id = String(repeating: "x", count: 300)
            await #expect(throws: EventError.self) { try await fixture.enqueue([poison]) }
            #expect(try await fixture.count("true") == 0)

            let first = userCreated("outbox-a")
            let last = userCreated("outbox-b")
            try await fixture.enqueue([first], per: 1)
            try await fixture.database.withConnection { connection in
                let json = String(decoding: poison.jsonBytes(), as: UTF8.self)
                try await connection.execute(
                    "INSERT INTO warren_outbox (event_id, event_type, event) VALUES (\(poison.id), \(poison.type), \(json))")
            }
            try await fixture.enqueue([last], per: 1)
            try await fixture.startRelay()

            try await eventually("the encodable events published") { try await fixture.sinkDepth() == 2 }
            try await eventually("the poison row parked") { try await fixture.count("parked_at IS NOT NULL") == 1 }
            #expect(try await fixture.drainSink() == [first.id, last.id])
            #expect(try await fixture.count("park_reason LIKE '%id: is 300 bytes%' AND published_at IS NULL") == 1)
        }

        @Test func theCLIRelayPrunesOldRowsAndStopsCleanlyOnSIGTERM() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let old = userCreated("outbox-old")
            try await fixture.enqueue([old])
            _ = try await fixture.database.withConnection { connection in
                try await connection.execute("UPDATE warren_outbox SET published_at = now() - interval '8 days'")
            }
            let fresh = userCreated("outbox-fresh")
            try await fixture.enqueue([fresh])

            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_AMQP_URL"] = fixture.url
            environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
            let log = NSTemporaryDirectory() + "warren-outbox-\(fixture.vhost).log"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let pid = try spawn(TestEnvironment.warrenBinary, ["outbox", "relay", "--retention", "7d", "--log-format", "json"], environment: environment, output: log)
            let process = WarrenProcess(pid: pid)

            try await eventually("the pending row published") { try await fixture.sinkDepth() == 1 }
            try await eventually("the old row pruned") { try await fixture.count("event_id = '\(old.id)'") == 0 }
            #expect(try await fixture.drainSink() == [fresh.id])
            let started = ContinuousClock.now
            #expect(process.kill(SIGTERM) == 0)
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    

        /// `warren outbox relay --metrics-address`: the pending gauges while nothing can be
        /// published (an exchange that does not exist), then published and parked counts.
        @Test func theRelaysMetricsCountPendingPublishedAndParkedRows() async throws {
            let fixture = try await Fixture()
            defer { Task { await fixture.tearDown() } }
            let users = (1...3).map { userCreated("outbox-metrics-\($0)") }
            let unroutable = CloudEvent(type: "payment.succeeded", source: "/tests", data: ["payment_id": "p", "user_id": "u", "amount": 1, "currency": "EUR"])
            try await fixture.enqueue(users + [unroutable])

            func relay(_ extra: [String]) throws -> (WarrenProcess, Int) {
                let port = try freePort()
                var environment = ProcessInfo.processInfo.environment
                environment["WARREN_AMQP_URL"] = fixture.url
                environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
                environment["WARREN_METRICS_ADDRESS"] = "127.0.0.1:\(port)"
                environment["WARREN_QUEUE_METRICS_INTERVAL"] = "0.2"
                let log = NSTemporaryDirectory() + "warren-outbox-metrics-\(fixture.vhost).log"
                let pid = try spawn(TestEnvironment.warrenBinary, ["outbox", "relay", "--poll-interval", "200"] + extra, environment: environment, output: log)
                return (WarrenProcess(pid: pid), port)
            }

            let (stuck, stuckPort) = try relay(["--exchange", "no.such.exchange"])
            try await eventually("the gauges see four pending rows") {
                (try? await MetricsTests.scrape(stuckPort))?["warren_outbox_pending"] == 4
            }
            let waiting = try await MetricsTests.scrape(stuckPort)
            #expect((waiting["warren_outbox_oldest_pending_age_seconds"] ?? -1) >= 0)
            #expect(waiting["warren_outbox_published_total"] == 0)
            #expect(stuck.kill(SIGTERM) == 0)

            let (working, port) = try relay([])
            defer { _ = working.kill(SIGTERM) }
            try await eventually("published and parked, nothing pending") {
                guard let scrape = try? await MetricsTests.scrape(port) else { return false }
                return scrape["warren_outbox_pending"] == 0 && scrape["warren_outbox_published_total"] == 3
            }
            let done = try await MetricsTests.scrape(port)
            #expect(done["warren_outbox_parked_total"] == 1)
            #expect(done[#"warren_amqp_publishes_total{connection="warren outbox relay",outcome="confirmed"}"#] == 3)
            #expect(done[#"warren_amqp_publishes_total{connection="warren outbox relay",outcome="returned"}"#] == 1)
            #expect(try await MetricsTests.get(port, "/readyz").status == 200)
            #expect(try await fixture.sinkDepth() == 3)
        }
    }
}
