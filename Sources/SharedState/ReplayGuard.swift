import Redis

/// Replay protection for inbound webhooks, shared by every `warren serve` replica: a
/// delivery id (a Standard Webhooks `webhook-id`, a Stripe event id) is claimed with
/// `SET NX EX` before it is published, so the same delivery sent to two replicas at once
/// is published by one of them. PostgreSQL's receipt stays the record of what was
/// published; this only decides who may try now.
///
/// - `claim` → `.claimed`: go on (check the receipt, publish, then `complete`, or
///   `release` if publishing failed so a retry can claim it again);
/// - `.published(eventID)`: done before (remembered for `rememberFor`), answer it as a duplicate;
/// - `.inProgress`: another request holds it right now: answer "retry" (409);
/// - `.unavailable`: Redis is unreachable or not configured: PostgreSQL alone decides, as before.
public struct ReplayGuard: Sendable {
    public enum Claim: Sendable, Equatable {
        case claimed(token: String)
        case published(eventID: String)
        case inProgress
        case unavailable
    }

    private let redis: RedisClient?
    /// How long a claim holds while its request publishes (then it lapses: a crashed replica
    /// blocks nobody for longer).
    public var claimFor: Duration
    /// How long a published delivery id is remembered here (PostgreSQL keeps it for good).
    public var rememberFor: Duration

    public init(redis: RedisClient?, claimFor: Duration = .seconds(30), rememberFor: Duration = .seconds(86_400)) {
        self.redis = redis
        self.claimFor = claimFor
        self.rememberFor = rememberFor
    }

    static func key(source: String, id: String) -> String { "warren:webhook:\(source):\(id)" }

    public func claim(source: String, id: String) async -> Claim {
        guard let redis else { return .unavailable }
        let token = "pending:" + String(UInt64.random(in: .min ... .max), radix: 16)
        do {
            let reply = try await redis.evaluate(
                Self.claimScript, keys: [Self.key(source: source, id: id)], arguments: [token, String(claimFor.components.seconds)])
            guard case .array(let parts) = reply, let first = parts.first?.text else {
                throw RedisError(.unexpectedReply, "the claim script answered \(reply)")
            }
            if first == "claimed" { return .claimed(token: token) }
            if let held = parts.dropFirst().first?.text, held.hasPrefix("published:") {
                return .published(eventID: String(held.dropFirst("published:".count)))
            }
            return .inProgress
        } catch {
            SharedStateMetrics.fallback(.replay)
            return .unavailable
        }
    }

    /// After the event was published (and its receipt written).
    public func complete(source: String, id: String, eventID: String) async {
        guard let redis else { return }
        do {
            try await redis.send("SET", Self.key(source: source, id: id), "published:" + eventID, "EX", String(rememberFor.components.seconds))
        } catch {
            SharedStateMetrics.fallback(.replay)
        }
    }

    /// After publishing failed: frees the claim if it is still this request's.
    public func release(source: String, id: String, token: String) async {
        guard let redis else { return }
        _ = try? await redis.evaluate(Self.releaseScript, keys: [Self.key(source: source, id: id)], arguments: [token])
    }

    static let claimScript = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then return {'claimed'} end
        return {'held', redis.call('GET', KEYS[1])}
        """)

    static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)
}
