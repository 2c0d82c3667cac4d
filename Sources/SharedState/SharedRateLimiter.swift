import Redis
import WarrenCore

/// A token bucket shared by every Warren process through Redis: `rate` tokens per `per`,
/// at most `burst`, starting full. Each take is one atomic Lua script on the server's
/// clock (`TIME`), so N processes together get the rate, not N times it.
///
/// Like `RateLimiter`, `acquire()` reserves the next token even when it is not earned
/// yet and sleeps until its time (the bucket may go negative: waiters queue without
/// polling); a cancelled wait gives its token back.
///
/// When Redis cannot be reached the same take goes to an in-process `RateLimiter` with
/// the same rate: work continues at the per-process rate until Redis is back.
public struct SharedRateLimiter: TokenBucket {
    public let key: String
    /// The script's rate and burst arguments, made once.
    private let limits: [String]
    private let redis: RedisClient
    private let local: RateLimiter

    /// `name` identifies the budget (`sendgrid`, `apikey:ingest`): every process using
    /// the same name and Redis shares it.
    public init(name: String, rate: Int, per interval: Duration, burst: Int? = nil, redis: RedisClient) {
        precondition(rate > 0 && interval > .zero, "a rate limiter needs a positive rate")
        self.key = "warren:rate:\(name)"
        self.limits = [String(Double(rate) / (interval / .seconds(1))), String(burst ?? rate)]
        self.redis = redis
        self.local = RateLimiter(rate: rate, per: interval, burst: burst)
    }

    public func acquire() async throws {
        try Task.checkCancellation()
        let microseconds: Int64
        do {
            microseconds = try await take(.reserve)
        } catch {
            // Whatever Redis said (down, slow, LOADING, a broken script): never fail the caller.
            SharedStateMetrics.fallback(.rateLimit)
            try await local.acquire()
            return
        }
        guard microseconds > 0 else { return }
        do {
            try await Task.sleep(for: .microseconds(microseconds))
        } catch {
            _ = try? await take(.refund)
            throw error
        }
    }

    public func tryAcquire() async -> Bool {
        do {
            return try await take(.try) == 0
        } catch {
            SharedStateMetrics.fallback(.rateLimit)
            return local.tryAcquire()
        }
    }

    private enum Mode: String { case reserve, `try`, refund }

    /// Microseconds to wait for the reserved token (0: now), or -1 when `try` found none.
    private func take(_ mode: Mode) async throws(RedisError) -> Int64 {
        let reply = try await redis.evaluate(
            Self.script, keys: [key], arguments: limits + [mode.rawValue])
        guard let microseconds = reply.integer else {
            throw RedisError(.unexpectedReply, "the token bucket script answered \(reply)")
        }
        return microseconds
    }

    /// KEYS[1] the bucket (a hash: tokens, updated); ARGV: tokens per second, burst, mode.
    /// The key expires once the bucket would be full again (a full bucket is no key).
    static let script = RedisScript("""
        local now = redis.call('TIME')
        now = tonumber(now[1]) + tonumber(now[2]) / 1000000
        local rate, burst, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
        local saved = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
        local tokens, updated = tonumber(saved[1]), tonumber(saved[2])
        if tokens == nil or updated == nil then tokens, updated = burst, now end
        if now > updated then
          tokens = math.min(burst, tokens + (now - updated) * rate)
          updated = now
        end
        local wait = 0
        if mode == 'refund' then
          tokens = math.min(burst, tokens + 1)
        elseif mode == 'try' then
          if tokens >= 1 then tokens = tokens - 1 else wait = -1 end
        else
          tokens = tokens - 1
          if tokens < 0 then wait = math.ceil(-tokens / rate * 1000000) end
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(updated))
        redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
        return wait
        """)
}
