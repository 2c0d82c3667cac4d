import Foundation
import AMQP
import HTTPAPI
import Logging
import Postgres
import ServiceLifecycle
import SharedState
import WarrenCore
import Webhooks

/// What `warren serve` runs: the broker connection, a database pool and the HTTP server,
/// as one `ServiceGroup` with graceful shutdown on SIGTERM/SIGINT (the server stops
/// accepting, finishes its requests, then the pool and the connection close).
public struct ServeApplication: Sendable {
    public var amqpURLs: String
    public var databaseURL: String
    public var catalogDirectory: String
    public var exchange: String
    public var http: HTTPServer.Configuration
    public var logger: Logger

    public init(amqpURLs: String, databaseURL: String, catalogDirectory: String, exchange: String = "events", http: HTTPServer.Configuration, logger: Logger) {
        self.amqpURLs = amqpURLs
        self.databaseURL = databaseURL
        self.catalogDirectory = catalogDirectory
        self.exchange = exchange
        self.http = http
        self.logger = logger
    }

    public func run() async throws {
        let catalog: EventCatalog
        do {
            catalog = try EventCatalog(directory: catalogDirectory)
        } catch {
            throw ApplicationError("\(error)")
        }
        var amqpConfiguration = try ApplicationError.amqpConfiguration(urls: amqpURLs, connectionName: "warren serve")
        // The front door opens without the broker: 503 and /readyz say so until it is back.
        amqpConfiguration.startsWithoutBroker = true
        let amqp = AMQPConnection(amqpConfiguration, logger: logger)
        let database = PostgresPool(conninfo: databaseURL, maxConnections: 4, logger: logger)
        let shared = try ApplicationError.sharedStore(logger: logger)
        let server = HTTPServer(
            configuration: http, amqp: amqp, database: database, catalog: catalog, exchange: exchange, shared: shared, logger: logger)
        // Shutdown runs backwards: the server drains before Redis, the pool and the broker close.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: ApplicationError.traced([amqp, database, shared, server]), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info("warren.serve.started", metadata: ["http.address": "\(http.host):\(http.port)"])
        try await ApplicationError.run(group)
    }
}

extension HTTPServer.Configuration {
    /// The server's settings from `--address` and the environment: secrets only ever
    /// come from the environment (`STRIPE_WEBHOOK_SECRET`, comma-separated during
    /// rotation), never from flags or files.
    public static func from(address: String, environment: [String: String]) throws(ApplicationError) -> HTTPServer.Configuration {
        let (host, port): (String, Int)
        do {
            (host, port) = try HTTPServer.Configuration.address(address)
        } catch {
            throw ApplicationError(error.description)
        }
        var configuration = HTTPServer.Configuration(host: host, port: port)
        configuration.stripeSecrets = (environment["STRIPE_WEBHOOK_SECRET"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if let text = environment["WARREN_STRIPE_WEBHOOK_TOLERANCE"], !text.isEmpty {
            guard let seconds = Int(text), seconds > 0 else { throw ApplicationError("WARREN_STRIPE_WEBHOOK_TOLERANCE must be a positive number of seconds, got '\(text)'") }
            configuration.signatureTolerance = seconds
        }
        func positive(_ name: String) throws(ApplicationError) -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text), value > 0 else { throw ApplicationError("\(name) must be a positive whole number, got '\(text)'") }
            return value
        }
        if let bytes = try positive("WARREN_HTTP_MAX_BODY") { configuration.maxBodySize = bytes }
        if let count = try positive("WARREN_HTTP_MAX_CONNECTIONS") { configuration.maxConnections = count }
        if let text = environment["WARREN_HTTP_KEY_CACHE"], !text.isEmpty {
            guard let seconds = Int(text), seconds >= 0 else { throw ApplicationError("WARREN_HTTP_KEY_CACHE must be a whole number of seconds (0 = none), got '\(text)'") }
            configuration.keyCacheDuration = .seconds(seconds)
        }
        if let seconds = try positive("WARREN_HTTP_HEADER_TIMEOUT") { configuration.headerTimeout = .seconds(seconds) }
        if let seconds = try positive("WARREN_HTTP_BODY_TIMEOUT") { configuration.bodyTimeout = .seconds(seconds) }
        let sourcesPath = environment[WebhookSources.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        // The default file is optional (a checkout has it; an image may not); a named one must exist.
        if let path = sourcesPath ?? (FileManager.default.fileExists(atPath: WebhookSources.defaultPath) ? WebhookSources.defaultPath : nil) {
            do {
                configuration.webhookSources = try WebhookSources.load(path: path)
            } catch {
                throw ApplicationError(error.description)
            }
            for source in configuration.webhookSources {
                configuration.webhookSecrets[source.name] = (environment[source.secretsVariable] ?? "").split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
        }
        configuration.webhookDestinations = DestinationGuard.from(environment: environment)
        do {
            configuration.webhookSecretSealer = try SecretSealer.from(environment: environment)
        } catch {
            throw ApplicationError(error.description)
        }
        return configuration
    }
}
