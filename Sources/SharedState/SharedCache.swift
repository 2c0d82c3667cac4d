import Foundation
import Redis
import Locking

/// A read-through cache shared by every process: values live in Redis under a
/// namespace's current generation (`warren:cache:{namespace}:{generation}:{key}`, for
/// `ttl`), and for `localTTL` in the process. `SharedStore.invalidate(namespace:)` (after
/// a change in PostgreSQL) gives the namespace a new generation, so no process reads an older entry from Redis
/// again, and publishes the namespace on `warren:invalidate`, so every process drops
/// its local entries within the message's latency (`SharedStore` subscribes).
///
/// PostgreSQL stays the source: a miss, a Redis outage or an undecodable entry loads
/// from it. Nothing negative is cached (an unknown key is asked again each time).
public final class SharedCache<Value: Codable & Sendable>: Sendable {
    public let namespace: String
    private let redis: RedisClient?
    private let ttl: Duration
    private let localTTL: Duration
    private struct Local {
        var entries: [String: (value: Value, until: ContinuousClock.Instant)] = [:]
        /// Bumped by every drop: a load that began before a drop does not store its value.
        var epoch: UInt64 = 0
    }
    private let local = Mutex(Local())
    /// Local entries kept at most (then all are dropped: a cache of few, hot entries).
    private let localLimit = 10_000

    init(namespace: String, redis: RedisClient?, ttl: Duration, localTTL: Duration) {
        self.namespace = namespace
        self.redis = redis
        self.ttl = ttl
        self.localTTL = localTTL
    }

    var generationKey: String { SharedCacheScripts.generationKey(namespace) }

    /// The value for `key`: from the process, else Redis, else `load` (then stored in both).
    public func value(for key: String, load: () async throws -> Value?) async throws -> Value? {
        let now = ContinuousClock.now
        let (cached, epoch) = local.withLock { local in (local.entries[key], local.epoch) }
        if let cached, cached.until > now { return cached.value }
        var generation: String?
        if let redis {
            do {
                let reply = try await redis.evaluate(
                    SharedCacheScripts.read, keys: [generationKey], arguments: ["warren:cache:\(namespace):", key, SharedCacheScripts.newGeneration()])
                guard case .array(let parts) = reply, let current = parts.first?.text else {
                    throw RedisError(.unexpectedReply, "the cache script answered \(reply)")
                }
                generation = current
                if parts.count > 1, case .string(let bytes) = parts[1], let value = try? JSONDecoder().decode(Value.self, from: Data(bytes)) {
                    remember(value, for: key, epoch: epoch)
                    return value
                }
            } catch {
                SharedStateMetrics.fallback(.cache)
            }
        }
        guard let value = try await load() else { return nil }
        remember(value, for: key, epoch: epoch)
        if let redis, let generation, let bytes = try? JSONEncoder().encode(value) {
            let entry = "warren:cache:\(namespace):\(generation):\(key)"
            _ = try? await redis.send([Array("SET".utf8), Array(entry.utf8), Array(bytes), Array("EX".utf8), Array(String(max(1, ttl.components.seconds)).utf8)])
        }
        return value
    }

    /// Forgets the process' entries (an invalidation message, or a resubscription after
    /// which messages may have been missed).
    public func dropLocal() {
        local.withLock { local in
            local.entries.removeAll()
            local.epoch &+= 1
        }
    }

    private func remember(_ value: Value, for key: String, epoch: UInt64) {
        guard localTTL > .zero else { return }
        let until = ContinuousClock.now + localTTL
        local.withLock { local in
            guard local.epoch == epoch else { return }
            if local.entries.count >= localLimit { local.entries.removeAll() }
            local.entries[key] = (value, until)
        }
    }
}

/// Outside the generic class: a generic type cannot have stored static properties.
enum SharedCacheScripts {
    static func generationKey(_ namespace: String) -> String { "warren:cache:\(namespace):generation" }

    /// A random generation: one lost with its key (evicted, flushed) is never taken again,
    /// so entries written under an old one are never read.
    static func newGeneration() -> String { String(UInt64.random(in: .min ... .max), radix: 36) }

    /// KEYS[1] the generation; ARGV the entries' prefix, the key, a new generation (taken
    /// when there is none): {generation, entry or nil}.
    static let read = RedisScript("""
        local generation = redis.call('GET', KEYS[1])
        if not generation then
          generation = ARGV[3]
          redis.call('SET', KEYS[1], generation)
        end
        return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
        """)
    /// KEYS[1] the generation; ARGV the channel, the namespace, the new generation.
    static let invalidate = RedisScript("""
        redis.call('SET', KEYS[1], ARGV[3])
        return redis.call('PUBLISH', ARGV[1], ARGV[2])
        """)
}
