import Foundation
import Redis
import SharedState
import Locking
import struct Synchronization.Atomic
import Testing
import WarrenCore

extension Integration {
    /// The Redis module and what `SharedState` builds on it, against the real Redis that
    /// `scripts/services` runs on 127.0.0.1:6379 (some tests kill and restart it).
    @Suite struct RedisIntegrationTests {
        static func client(_ configure: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisClient {
            var configuration = try RedisConfiguration(url: TestEnvironment.redisURL)
            configuration.probeInterval = .milliseconds(200)
            configure(&configuration)
            return RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        }

        /// A port nothing listens on.
        static let deadURL = "redis://:hunter2@127.0.0.1:6390/0"

        @Test func commandsRoundTripBinaryValuesAndServerErrorsAreThrown() async throws {
            let redis = try Self.client()
            defer { Task { await redis.close() } }
            let key = TestEnvironment.uniqueName("redis")
            let bytes: [UInt8] = [0, 1, 2, 0xFF, 0x0D, 0x0A, 0]
            #expect(try await redis.send([Array("SET".utf8), Array(key.utf8), bytes, Array("EX".utf8), Array("60".utf8)]) == .status("OK"))
            #expect(try await redis.send("GET", key) == .string(bytes))
            #expect(try await redis.send("GET", key + ".missing") == .null)
            #expect(try await redis.send("INCR", key + ".n") == .integer(1))
            await #expect(throws: RedisError.self) { try await redis.send("INCR", key) }  // not an integer: ERR …
            do {
                try await redis.send("NOSUCHCOMMAND", "secret-argument")
                Issue.record("an unknown command succeeded")
            } catch {
                #expect(error.kind == .server && error.message.hasPrefix("NOSUCHCOMMAND:"))
            }
            #expect(redis.isAvailable)  // a server error is not an outage
            try await redis.send("DEL", key, key + ".n")
        }

        @Test func scriptsAreLoadedOnceTheServerForgetsThem() async throws {
            let redis = try Self.client()
            defer { Task { await redis.close() } }
            let script = RedisScript("return tonumber(ARGV[1]) + 1")
            try await redis.send("SCRIPT", "FLUSH")
            #expect(try await redis.evaluate(script, keys: [], arguments: ["41"]) == .integer(42))  // NOSCRIPT, then EVAL
            #expect(try await redis.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
            #expect(try await redis.evaluate(script, keys: [], arguments: ["1"]) == .integer(2))  // EVALSHA
        }

        @Test func errorsNeverContainThePassword() async throws {
            // Our Redis has no password: AUTH with one is refused by the server.
            let redis = try Self.client { $0.password = "hunter2-very-secret" }
            defer { Task { await redis.close() } }
            do {
                try await redis.send("PING")
                Issue.record("AUTH with a wrong password succeeded")
            } catch {
                #expect(error.kind == .connectionFailed && error.message.contains("AUTH refused"))
                #expect(!"\(error)".contains("hunter2"))
            }
            let dead = RedisClient(configuration: try RedisConfiguration(url: Self.deadURL), logger: TestEnvironment.logger)
            await #expect { try await dead.send("PING") } throws: { !"\($0)".contains("hunter2") && ($0 as? RedisError)?.kind == .connectionFailed }
        }

        @Test func anOutageFailsFastBetweenProbes() async throws {
            var configuration = try RedisConfiguration(url: Self.deadURL)
            configuration.probeInterval = .seconds(30)
            let redis = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
            await #expect(throws: RedisError.self) { try await redis.send("PING") }  // refused: the outage begins
            #expect(!redis.isAvailable)
            for _ in 0..<100 {
                do {
                    try await redis.send("PING")
                } catch {
                    #expect(error.kind == .unavailable)  // not even a connect attempt
                }
            }
        }

        @Test func theClientAndTheSubscriberRecoverWhenRedisComesBack() async throws {
            let redis = try Self.client()
            defer { Task { await redis.close() } }
            let channel = TestEnvironment.uniqueName("channel")
            let received = Mutex<[String]>([])
            let subscriptions = Atomic<Int>(0)
            var configuration = try RedisConfiguration(url: TestEnvironment.redisURL)
            configuration.probeInterval = .milliseconds(200)
            let subscriber = RedisSubscriber(
                configuration: configuration, channels: [channel, channel + ".other"], logger: TestEnvironment.logger,
                onSubscribed: { subscriptions.add(1, ordering: .relaxed) },
                onMessage: { channel, message in received.withLock { $0.append("\(channel)=\(String(decoding: message, as: UTF8.self))") } })
            let running = Task { try await subscriber.run() }
            defer { running.cancel() }
            try await eventually(timeout: .seconds(10), "condition") { subscriptions.load(ordering: .relaxed) == 1 }
            try await redis.send("PUBLISH", channel, "one")
            try await redis.send("PUBLISH", channel + ".other", "two")
            try await eventually(timeout: .seconds(10), "condition") { received.withLock { $0 } == ["\(channel)=one", "\(channel).other=two"] }

            var restarted = false
            defer { if !restarted { _ = try? TestEnvironment.services("start", "redis") } }
            try TestEnvironment.services("kill", "redis")
            await #expect(throws: RedisError.self) { try await redis.send("PING") }
            #expect(!redis.isAvailable)
            try TestEnvironment.services("start", "redis")
            restarted = true
            // The next probe (200 ms) reconnects; the subscriber subscribes again.
            try await eventually(timeout: .seconds(10), "condition") { (try? await redis.send("PING")) == .status("PONG") }
            #expect(redis.isAvailable)
            try await eventually(timeout: .seconds(10), "condition") { subscriptions.load(ordering: .relaxed) == 2 }
            try await redis.send("PUBLISH", channel, "three")
            try await eventually(timeout: .seconds(10), "condition") { received.withLock { $0.last } == "\(channel)=three" }
        }

        // MARK: SharedState

        @Test func aSharedBucketHoldsTheRateAcrossProcesses() async throws {
            // Two clients = two processes; 10 per second with a burst of 10 between them.
            let (first, second) = (try Self.client(), try Self.client())
            let name = TestEnvironment.uniqueName("bucket")
            let limiters = [first, second].map { SharedRateLimiter(name: name, rate: 10, per: .seconds(1), redis: $0) }
            var taken = 0
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(2) {
                for limiter in limiters where await limiter.tryAcquire() { taken += 1 }
                try await Task.sleep(for: .milliseconds(5))
            }
            // A full bucket (10) + 2 s of refill (20), whatever the number of takers; one each alone would allow 60.
            #expect(taken >= 28 && taken <= 31, "took \(taken) in 2 s")

            // acquire() reserves: 20 more takes across both wait for their tokens (~2 s at 10/s).
            let waitedFrom = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 { group.addTask { try await limiters[index % 2].acquire() } }
                try await group.waitForAll()
            }
            let waited = ContinuousClock.now - waitedFrom
            #expect(waited >= .milliseconds(1700) && waited < .seconds(4), "20 reserved takes at 10/s took \(waited)")
        }

        @Test func aBucketFallsBackToTheProcessWhileRedisIsUnreachable() async throws {
            let redis = RedisClient(configuration: try RedisConfiguration(url: Self.deadURL), logger: TestEnvironment.logger)
            let limiter = SharedRateLimiter(name: "dead", rate: 5, per: .seconds(1), redis: redis)
            var taken = 0
            for _ in 0..<20 where await limiter.tryAcquire() { taken += 1 }
            #expect(taken == 5)  // the local bucket's burst: limited, not failing
            try await limiter.acquire()  // waits for the local bucket, does not throw
        }

        @Test func aWebhookIDIsClaimedByOneRequestAtATime() async throws {
            let redis = try Self.client()
            defer { Task { await redis.close() } }
            let replay = ReplayGuard(redis: redis)
            let id = TestEnvironment.uniqueName("delivery")
            guard case .claimed(let token) = await replay.claim(source: "test", id: id) else {
                Issue.record("the first claim did not succeed")
                return
            }
            #expect(await replay.claim(source: "test", id: id) == .inProgress)
            await replay.release(source: "test", id: id, token: "pending:not-mine")  // someone else's token frees nothing
            #expect(await replay.claim(source: "test", id: id) == .inProgress)
            await replay.release(source: "test", id: id, token: token)
            guard case .claimed = await replay.claim(source: "test", id: id) else {
                Issue.record("a released claim could not be claimed again")
                return
            }
            await replay.complete(source: "test", id: id, eventID: "test:\(id)")
            #expect(await replay.claim(source: "test", id: id) == .published(eventID: "test:\(id)"))
            #expect(await ReplayGuard(redis: nil).claim(source: "test", id: id) == .unavailable)
        }

        @Test func aCacheIsSharedAndAnInvalidationReachesEveryProcess() async throws {
            let logger = TestEnvironment.logger
            let environment = ["WARREN_REDIS_URL": TestEnvironment.redisURL]
            let (one, two) = (try SharedStore.from(environment: environment, logger: logger), try SharedStore.from(environment: environment, logger: logger))
            let runs = [one, two].map { store in Task { try await store.run() } }
            defer { for run in runs { run.cancel() } }
            let namespace = TestEnvironment.uniqueName("cache")
            let cacheOne = one.cache(String.self, namespace: namespace, ttl: .seconds(60), localTTL: .seconds(60))
            let cacheTwo = two.cache(String.self, namespace: namespace, ttl: .seconds(60), localTTL: .seconds(60))
            let loads = Atomic<Int>(0)
            let source = Mutex("v1")
            let load: @Sendable () async throws -> String? = {
                loads.add(1, ordering: .relaxed)
                return source.withLock { $0 }
            }
            // Both subscribed first (a message before that would be missed).
            try await eventually("both stores subscribed") { one.hasSubscribed && two.hasSubscribed }
            #expect(try await cacheOne.value(for: "k", load: load) == "v1")
            #expect(try await cacheTwo.value(for: "k", load: load) == "v1")  // from Redis
            #expect(try await cacheTwo.value(for: "k", load: load) == "v1")  // from the process
            #expect(loads.load(ordering: .relaxed) == 1)
            #expect(try await cacheOne.value(for: "missing", load: { nil }) == nil)

            source.withLock { $0 = "v2" }
            #expect(await one.invalidate(namespace: namespace))
            // The other process drops its local entry on the message, well within a second.
            try await eventually(timeout: .seconds(1), "condition") { try await cacheTwo.value(for: "k", load: load) == "v2" }
            #expect(try await cacheOne.value(for: "k", load: load) == "v2")
            #expect(loads.load(ordering: .relaxed) == 2)

            // The generation lost (evicted, flushed): never read an entry of an older one again.
            source.withLock { $0 = "v3" }
            let before = try await one.redis!.send("GET", "warren:cache:\(namespace):generation")
            try await one.redis!.send("DEL", "warren:cache:\(namespace):generation")
            cacheOne.dropLocal()
            #expect(try await cacheOne.value(for: "k", load: load) == "v3")
            let after = try await one.redis!.send("GET", "warren:cache:\(namespace):generation")
            #expect(after != .null && after != before && after != .string(Array("0".utf8)))
        }
    }
}
