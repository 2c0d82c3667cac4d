import Metrics

/// Per-consumer counters and the processing-latency histogram, through swift-metrics
/// (the process that runs consumers chooses the backend).
struct ConsumerMetrics: Sendable {
    let received: Counter
    let processed: Counter
    let duplicates: Counter
    let retried: Counter
    let deadLettered: Counter
    /// Per batch: from handing the batch out to settling its last delivery.
    let latency: Timer

    init(consumer: String) {
        func counter(_ outcome: String) -> Counter {
            Counter(label: "warren_consumer_messages_total", dimensions: [("consumer", consumer), ("outcome", outcome)])
        }
        received = counter("received")
        processed = counter("processed")
        duplicates = counter("duplicate")
        retried = counter("retried")
        deadLettered = counter("dead_lettered")
        latency = Timer(label: "warren_consumer_batch_duration_seconds", dimensions: [("consumer", consumer)], preferredDisplayUnit: .milliseconds)
    }
}
