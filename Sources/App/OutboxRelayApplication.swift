import AMQP
import Foundation
import Logging
import Observability
import Operations
import Postgres
import ServiceLifecycle

/// What `warren outbox relay` runs: the broker connection, a small database pool and the
/// relay, as one `ServiceGroup` with graceful shutdown on SIGTERM/SIGINT.
public struct OutboxRelayApplication: Sendable {
    public let amqpURLs: String
    public let databaseURL: String
    public let settings: OutboxRelaySettings
    public let metrics: MetricsSettings?
    public let logger: Logger

    public init(amqpURLs: String, databaseURL: String, settings: OutboxRelaySettings, metrics: MetricsSettings? = nil, logger: Logger) {
        self.metrics = metrics
        self.amqpURLs = amqpURLs
        self.databaseURL = databaseURL
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        let amqp = AMQPConnection(
            try ApplicationError.amqpConfiguration(urls: amqpURLs, connectionName: "warren outbox relay"), logger: logger)
        let database = PostgresPool(conninfo: databaseURL, maxConnections: 2, logger: logger)
        var settings = self.settings
        settings.metricsInterval = try MetricsSettings.refreshInterval(ProcessInfo.processInfo.environment)
        var services: [any Service] = [amqp, database, OutboxRelay(settings: settings, amqp: amqp, database: database, conninfo: databaseURL, logger: logger)]
        if let metrics { services.append(metrics.server(Readiness([.broker(amqp), .database(database)]), logger: logger)) }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: ApplicationError.traced(services), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await ApplicationError.run(group)
    }
}
