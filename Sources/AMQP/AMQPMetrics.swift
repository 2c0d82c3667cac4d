import Metrics

/// A connection's metrics, labelled with its connection name (`warren users.projection`):
/// `warren_amqp_connected`, `warren_amqp_blocked` (0/1 gauges), `warren_amqp_reconnects_total`,
/// `warren_amqp_blocked_seconds_total`, `warren_amqp_publishes_total{outcome}` and
/// `warren_amqp_publish_confirm_duration_seconds` (from the call to the broker's confirm).
/// Recorded through swift-metrics: a no-op until the process bootstraps a backend.
final class AMQPMetrics: Sendable {
    let connected: Gauge
    let blocked: Gauge
    let reconnects: Counter
    let blockedSeconds: FloatingPointCounter
    let confirmed: Counter
    let nacked: Counter
    let returned: Counter
    let timedOut: Counter
    let failed: Counter
    let confirmDuration: Timer

    init(connection: String) {
        let label = [("connection", connection)]
        func publishes(_ outcome: String) -> Counter {
            Counter(label: "warren_amqp_publishes_total", dimensions: label + [("outcome", outcome)])
        }
        connected = Gauge(label: "warren_amqp_connected", dimensions: label)
        blocked = Gauge(label: "warren_amqp_blocked", dimensions: label)
        reconnects = Counter(label: "warren_amqp_reconnects_total", dimensions: label)
        blockedSeconds = FloatingPointCounter(label: "warren_amqp_blocked_seconds_total", dimensions: label)
        confirmed = publishes("confirmed")
        nacked = publishes("nacked")
        returned = publishes("returned")
        timedOut = publishes("timeout")
        failed = publishes("failed")
        confirmDuration = Timer(label: "warren_amqp_publish_confirm_duration_seconds", dimensions: label)
        connected.record(0)
        blocked.record(0)
    }

    func state(_ state: AMQPConnectionState) {
        switch state {
        case .connected:
            connected.record(1)
            blocked.record(0)
        case .blocked:
            connected.record(1)
            blocked.record(1)
        case .connecting, .reconnecting, .closed:
            connected.record(0)
            blocked.record(0)
        }
    }

    /// The broker stopped blocking publishes after `duration`.
    func unblocked(after duration: Duration) {
        blockedSeconds.increment(by: duration.inSeconds)
    }

    /// A publish settled: confirmed (with its latency), or why not. Called on the I/O thread.
    func published(_ result: Result<Void, AMQPError>, since started: ContinuousClock.Instant) {
        switch result {
        case .success:
            confirmed.increment()
            confirmDuration.record(duration: ContinuousClock.now - started)
        case .failure(let error):
            switch error.code {
            case .publishNacked: nacked.increment()
            case .publishReturned: returned.increment()
            case .timeout: timedOut.increment()
            default: failed.increment()
            }
        }
    }
}

extension Duration {
    fileprivate var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
