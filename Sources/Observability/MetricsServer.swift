import Hummingbird
import Logging
import ServiceLifecycle

/// The small HTTP server of processes that have no other (`warren consume NAME`,
/// `warren outbox relay`): `/metrics`, `/healthz` and `/readyz` only, on
/// `--metrics-address` / `WARREN_METRICS_ADDRESS`. A `Service`: put it last in the group so
/// it stops answering first on SIGTERM.
public struct MetricsServer: Service, CustomStringConvertible {
    public var description: String { "MetricsServer(\(host):\(port))" }

    let host: String
    let port: Int
    let readiness: Readiness
    let logger: Logger

    public init(host: String, port: Int, readiness: Readiness, logger: Logger) {
        self.host = host
        self.port = port
        self.readiness = readiness
        self.logger = logger
    }

    public func run() async throws {
        let router = Router()
        router.add(middleware: HTTPMetricsMiddleware())
        router.add(middleware: JSONErrorMiddleware())
        ObservabilityRoutes.add(to: router, readiness: readiness)
        let (host, port, logger) = (self.host, self.port, self.logger)
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "warren"),
            onServerRunning: { channel in
                logger.info("metrics.listening", metadata: ["metrics.address": "\(host):\(channel.localAddress?.port ?? port)"])
            },
            logger: logger)
        try await app.run()
    }
}
