import Logging
import Redis
import ServiceLifecycle
import Locking
import WarrenCore

/// What a Warren process shares with the others through Redis (`WARREN_REDIS_URL`):
/// token buckets, webhook replay claims and read-through caches. Without a URL, or while
/// Redis is unreachable, each falls back to what the process has alone (its own buckets,
/// PostgreSQL), so nothing fails because of Redis.
///
/// As a `Service` it runs the client (outage probes) and the subscription to
/// `warren:invalidate`, through which caches drop their local entries when another
/// process changes what they hold.
public final class SharedStore: Service, Sendable, CustomStringConvertible {
    public static let invalidationChannel = "warren:invalidate"

    public let redis: RedisClient?
    private let subscriber: RedisSubscriber?
    private let caches = CacheRegistry()
    private let subscribed = SubscribedFlag()
    private let logger: Logger

    /// True once the subscription to `warren:invalidate` was made (it is made again after
    /// every reconnection): from then on other processes' invalidations reach this one.
    public var hasSubscribed: Bool { subscribed.value.withLock { $0 } }

    private final class SubscribedFlag: Sendable { let value = Mutex(false) }

    public var description: String { redis.map { "SharedStore(\($0.configuration))" } ?? "SharedStore(no Redis)" }

    public init(configuration: RedisConfiguration?, logger: Logger) {
        self.logger = logger
        guard let configuration else {
            redis = nil
            subscriber = nil
            return
        }
        redis = RedisClient(configuration: configuration, logger: logger)
        let caches = self.caches
        let subscribed = self.subscribed
        subscriber = RedisSubscriber(
            configuration: configuration, channels: [Self.invalidationChannel], logger: logger,
            // Messages published while unsubscribed are lost: start over.
            onSubscribed: {
                caches.dropAll()
                subscribed.value.withLock { $0 = true }
            },
            onMessage: { _, message in caches.drop(namespace: String(decoding: message, as: UTF8.self)) })
    }

    /// From the environment: `WARREN_REDIS_URL` (unset or empty: no Redis) and
    /// `WARREN_REDIS_TIMEOUT` (seconds for a connect or a reply, default 1).
    public static func from(environment: [String: String], logger: Logger) throws(RedisError) -> SharedStore {
        guard let url = environment["WARREN_REDIS_URL"], !url.isEmpty else { return SharedStore(configuration: nil, logger: logger) }
        var configuration = try RedisConfiguration(url: url)
        if let text = environment["WARREN_REDIS_TIMEOUT"], !text.isEmpty {
            guard let seconds = Double(text), seconds >= 0.01, seconds <= 60 else {
                throw RedisError(.configuration, "WARREN_REDIS_TIMEOUT must be 0.01 to 60 seconds, got '\(text)'")
            }
            configuration.timeout = .milliseconds(Int64(seconds * 1000))
        }
        return SharedStore(configuration: configuration, logger: logger)
    }

    /// A bucket of `rate` per `per` shared by every process (`name` names the budget),
    /// or the process' own when there is no Redis.
    public func rateLimiter(name: String, rate: Int, per interval: Duration, burst: Int? = nil) -> any TokenBucket {
        guard let redis else { return RateLimiter(rate: rate, per: interval, burst: burst) }
        return SharedRateLimiter(name: name, rate: rate, per: interval, burst: burst, redis: redis)
    }

    /// A cache of `namespace` (`apikeys`, `webhook-subscriptions`): entries kept `ttl` in
    /// Redis and `localTTL` in the process (zero: none, every read asks Redis), both
    /// dropped by ``invalidate(namespace:)``.
    public func cache<Value: Codable & Sendable>(
        _ type: Value.Type = Value.self, namespace: String, ttl: Duration, localTTL: Duration
    ) -> SharedCache<Value> {
        let cache = SharedCache<Value>(namespace: namespace, redis: redis, ttl: ttl, localTTL: localTTL)
        caches.register(namespace: namespace) { [weak cache] in cache?.dropLocal() }
        return cache
    }

    public var replay: ReplayGuard { ReplayGuard(redis: redis) }

    /// After a change in PostgreSQL to what `namespace`'s caches hold: a new generation, so
    /// no process reads an older entry from Redis again, published on `warren:invalidate`,
    /// so every subscribed process drops its local entries. False if Redis could not be
    /// told (others keep their copies until they expire).
    @discardableResult
    public func invalidate(namespace: String) async -> Bool {
        caches.drop(namespace: namespace)
        guard let redis else { return true }
        do {
            _ = try await redis.evaluate(
                SharedCacheScripts.invalidate, keys: [SharedCacheScripts.generationKey(namespace)],
                arguments: [Self.invalidationChannel, namespace, SharedCacheScripts.newGeneration()])
            return true
        } catch {
            SharedStateMetrics.fallback(.cache)
            logger.warning(
                "redis.invalidation.failed",
                metadata: ["cache": "\(namespace)", "error": "\(error)", "redis.fallback": "other processes keep their copies until they expire"])
            return false
        }
    }

    public func run() async throws {
        guard let redis, let subscriber else {
            // Nothing to run; stay up like the others until shutdown.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(86_400 * 365)) }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await redis.run() }
            group.addTask { try? await subscriber.run() }
        }
    }
}

/// Each cache's `dropLocal`, by namespace.
private final class CacheRegistry: Sendable {
    private let drops = Mutex<[String: [@Sendable () -> Void]]>([:])

    func register(namespace: String, _ drop: @escaping @Sendable () -> Void) {
        drops.withLock { $0[namespace, default: []].append(drop) }
    }

    func drop(namespace: String) {
        for drop in drops.withLock({ $0[namespace] ?? [] }) { drop() }
    }

    func dropAll() {
        for drop in drops.withLock({ $0.values.flatMap { $0 } }) { drop() }
    }
}
