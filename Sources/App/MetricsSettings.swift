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

    /// Nil when `address` is nil or empty (no metrics server).
    public static func from(address: String?, environment: [String: String]) throws(ApplicationError) -> MetricsSettings? {
        guard let address, !address.isEmpty else { return nil }
        do {
            let (host, port) = try HTTPServer.Configuration.address(address)
            return MetricsSettings(host: host, port: port)
        } catch {
            throw ApplicationError("metrics address: \(error.description)")
        }
    }

    static func refreshInterval(_ environment: [String: String]) throws(ApplicationError) -> Duration {
        guard let text = environment["WARREN_QUEUE_METRICS_INTERVAL"], !text.isEmpty else { return .seconds(15) }
        // Each round is a passive declare per queue on the connection's I/O thread: not
        // more often than every 100 ms.
        guard let seconds = Double(text), (0.1...86_400).contains(seconds) else {
            throw ApplicationError("WARREN_QUEUE_METRICS_INTERVAL must be a number of seconds from 0.1 to 86400, got '\(text)'")
        }
        return .seconds(seconds)
    }

    func server(_ readiness: Readiness, logger: Logger) -> MetricsServer {
        MetricsServer(host: host, port: port, readiness: readiness, logger: logger)
    }
}
