import AMQP
import Logging
import Operations
import Postgres
import ServiceLifecycle

/// What `warren outbox relay` runs: the broker connection, a small database pool and the
/// relay, as one `ServiceGroup` with graceful shutdown on SIGTERM/SIGINT.
public struct OutboxRelayApplication: Sendable {
    public let amqpURLs: String
    public let databaseURL: String
    public let settings: OutboxRelaySettings
    public let logger: Logger

    public init(amqpURLs: String, databaseURL: String, settings: OutboxRelaySettings, logger: Logger) {
        self.amqpURLs = amqpURLs
        self.databaseURL = databaseURL
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        let amqp = AMQPConnection(
            try ApplicationError.amqpConfiguration(urls: amqpURLs, connectionName: "warren outbox relay"), logger: logger)
        let database = PostgresPool(conninfo: databaseURL, maxConnections: 2, logger: logger)
        let relay = OutboxRelay(settings: settings, amqp: amqp, database: database, conninfo: databaseURL, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [amqp, database, relay], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await ApplicationError.run(group)
    }
}
