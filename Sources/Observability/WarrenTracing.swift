import Logging
import OTel
import ServiceLifecycle
import Locking
import Tracing
import WarrenCore

/// Span export over OTLP/HTTP (swift-otel), on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, off by default. Only traces: logs keep
/// Warren's own handler and metrics Prometheus. swift-otel reads the other standard
/// variables itself (`OTEL_SERVICE_NAME`, default `warren`; `OTEL_EXPORTER_OTLP_PROTOCOL`,
/// `http/protobuf` by default; `OTEL_EXPORTER_OTLP_HEADERS`; `OTEL_TRACES_SAMPLER`;
/// `OTEL_BSP_SCHEDULE_DELAY`, …).
///
/// The exporter is a `Service`: long-running commands put ``service`` first in their
/// ServiceGroup, so it stops last and flushes the spans of everything else.
public enum WarrenTracing {
    private static let exporter = Mutex<(any Service)?>(nil)

    /// Bootstraps the tracer once; false when export is not configured (or already on).
    /// Throws for settings swift-otel refuses (an unsupported exporter or protocol).
    @discardableResult
    public static func bootstrap(environment: [String: String], serviceName: String = "warren") throws -> Bool {
        let configured = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].contains { !(environment[$0] ?? "").isEmpty }
        guard configured, exporter.withLock({ $0 == nil }) else { return false }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        exporter.withLock { $0 = backend.service }
        SpanExport.enable()
        return true
    }

    /// The exporter to run (first in the group), when export is on.
    public static var service: (any Service)? { exporter.withLock { $0 } }
}
