import Metrics
import Prometheus
import Locking

/// The process's metrics backend: swift-prometheus behind swift-metrics, bootstrapped once
/// by each long-running command before anything records a metric (a `Counter` made before
/// the bootstrap stays a no-op). Libraries only use the swift-metrics API; the names they
/// use are listed in the README's metrics table.
public enum WarrenMetrics {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a Prometheus registry; later calls do nothing.
    public static func bootstrap() {
        let created = registry.withLock { registry -> PrometheusCollectorRegistry? in
            guard registry == nil else { return nil }
            registry = PrometheusCollectorRegistry()
            return registry
        }
        guard let created else { return }
        var factory = PrometheusMetricsFactory(registry: created)
        // Seconds, from a fast local call to a webhook timeout.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000), .seconds(5),
            .seconds(10), .seconds(30),
        ]
        // Counts (batch sizes).
        factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        MetricsSystem.bootstrap(factory)
    }

    /// Every metric in the Prometheus text format (version 0.0.4); empty before `bootstrap()`.
    public static func exposition() -> [UInt8] {
        guard let registry = registry.withLock({ $0 }) else { return [] }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
