import Metrics
import Synchronization

/// A consumer's metrics, through swift-metrics (the process chooses the backend; see the
/// README's metrics table):
/// - `warren_consumer_messages_total{consumer, outcome}`: `received`, then exactly one of
///   `processed`, `duplicate`, `retried`, `dead_lettered`, `rejected_oversize` per delivery;
/// - `warren_consumer_batch_size`, `warren_consumer_batch_duration_seconds` (from taking
///   the batch to settling its last delivery), `warren_consumer_handler_duration_seconds`
///   (the module's part of the transaction);
/// - `warren_consumer_subscribed`: 1 from subscribing until the consumer stops (a
///   reconnect resumes it: read it with `warren_amqp_connected`).
/// Its lag is its queue's depth (`QueueDepthMonitor`).
struct ConsumerMetrics: Sendable {
    let received: Counter
    let processed: Counter
    let duplicates: Counter
    let retried: Counter
    let deadLettered: Counter
    let rejectedOversize: Counter
    let batchSize: Recorder
    /// Per batch: from handing the batch out to settling its last delivery.
    let latency: Timer
    let handler: Timer
    let subscribed: Gauge

    init(consumer: String) {
        let label = [("consumer", consumer)]
        func counter(_ outcome: String) -> Counter {
            Counter(label: "warren_consumer_messages_total", dimensions: label + [("outcome", outcome)])
        }
        received = counter("received")
        processed = counter("processed")
        duplicates = counter("duplicate")
        retried = counter("retried")
        deadLettered = counter("dead_lettered")
        rejectedOversize = counter("rejected_oversize")
        batchSize = Recorder(label: "warren_consumer_batch_size", dimensions: label, aggregate: true)
        latency = Timer(label: "warren_consumer_batch_duration_seconds", dimensions: label, preferredDisplayUnit: .seconds)
        handler = Timer(label: "warren_consumer_handler_duration_seconds", dimensions: label, preferredDisplayUnit: .seconds)
        subscribed = Gauge(label: "warren_consumer_subscribed", dimensions: label)
        subscribed.record(0)
    }
}

/// Whether a consumer is subscribed now, for readiness probes (`ConsumerRuntime.isSubscribed`).
final class SubscriptionFlag: Sendable {
    private let value = Atomic<Bool>(false)
    private let gauge: Gauge

    init(gauge: Gauge) {
        self.gauge = gauge
    }

    var isSet: Bool { value.load(ordering: .relaxed) }

    func set(_ subscribed: Bool) {
        value.store(subscribed, ordering: .relaxed)
        gauge.record(subscribed ? 1 : 0)
    }
}
