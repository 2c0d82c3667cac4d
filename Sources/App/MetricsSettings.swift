import Foundation
import HTTPAPI
import Logging
import Observability

/// Where a process without an HTTP server serves `/metrics`, `/healthz` and `/readyz`
/// (`--metrics-address`, `WARREN_METRICS_ADDRESS`), and how often gauges read from the
/// broker and the database are refreshed (`WARREN_QUEUE_METRICS_INTERVAL`, seconds).
public struct MetricsSettings: Sendable {
    public var host: String
    public var port: Int
    public var refreshInterval: Duration

    /// Nil when `address` is nil or empty (no metrics server).
    public static func from(address: String?, environment: [String: String]) throws(ApplicationError) -> MetricsSettings? {
        let interval = try refreshInterval(environment)
        guard let address, !address.isEmpty else { return nil }
        do {
            let (host, port) = try HTTPServer.Configuration.address(address)
            return MetricsSettings(host: host, port: port, refreshInterval: interval)
        } catch {
            throw ApplicationError("metrics address: \(error.description)")
        }
    }

    static func refreshInterval(_ environment: [String: String]) throws(ApplicationError) -> Duration {
        guard let text = environment["WARREN_QUEUE_METRICS_INTERVAL"], !text.isEmpty else { return .seconds(15) }
        guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
            throw ApplicationError("WARREN_QUEUE_METRICS_INTERVAL must be a positive number of seconds, got '\(text)'")
        }
        return .milliseconds(Int64(seconds * 1000))
    }

    func server(_ readiness: Readiness, logger: Logger) -> MetricsServer {
        MetricsServer(host: host, port: port, readiness: readiness, logger: logger)
    }
}
