import Metrics

/// `warren_redis_fallbacks_total{use}`: operations that went to the per-process bucket or
/// to PostgreSQL because Redis could not be reached (with `warren_redis_up` from the client).
enum SharedStateMetrics {
    enum Use: String {
        case rateLimit = "rate_limit"
        case replay
        case cache
    }

    private static let counters: [Use: Counter] = [
        .rateLimit: Counter(label: "warren_redis_fallbacks_total", dimensions: [("use", Use.rateLimit.rawValue)]),
        .replay: Counter(label: "warren_redis_fallbacks_total", dimensions: [("use", Use.replay.rawValue)]),
        .cache: Counter(label: "warren_redis_fallbacks_total", dimensions: [("use", Use.cache.rawValue)]),
    ]

    static func fallback(_ use: Use) {
        counters[use]?.increment()
    }
}
