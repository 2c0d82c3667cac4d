import Metrics

/// `warren_webhook_deliveries_total{outcome}`: each attempt's end — `delivered`,
/// `retried` (failed, another attempt is scheduled), `failed` (the last attempt failed),
/// `gone` (410: the subscription is disabled); and `warren_webhook_attempt_duration_seconds`.
struct WebhookMetrics: Sendable {
    let delivered = Counter(label: "warren_webhook_deliveries_total", dimensions: [("outcome", "delivered")])
    let retried = Counter(label: "warren_webhook_deliveries_total", dimensions: [("outcome", "retried")])
    let failed = Counter(label: "warren_webhook_deliveries_total", dimensions: [("outcome", "failed")])
    let gone = Counter(label: "warren_webhook_deliveries_total", dimensions: [("outcome", "gone")])
    let duration = Timer(label: "warren_webhook_attempt_duration_seconds")

    /// Kept out of line: the Swift 6.3 optimizer crashed on switches over enums with
    /// payloads inlined into async code.
    @inline(never)
    func attempted(_ decision: DeliveryDecision, latency: Duration) {
        duration.record(duration: latency)
        switch decision {
        case .delivered: delivered.increment()
        case .retry: retried.increment()
        case .failed: failed.increment()
        case .gone: gone.increment()
        }
    }
}
