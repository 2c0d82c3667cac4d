import AMQP
import Adapters
import Consumers
import HTTPAPI
import Handlers
import Operations
import Logging
import Observability
import Postgres
import ServiceLifecycle
import SharedState
import Foundation
import Topology
import WarrenCore
import Webhooks

/// What `warren run` and `warren consume NAME` run: the broker connection, the database
/// pool and the selected consumers, as one `ServiceGroup` with graceful shutdown on
/// SIGTERM/SIGINT. The connection and the pool come first in the group, so on shutdown
/// the consumers drain (finish, settle, cancel) before either closes.
public struct ConsumerApplication: Sendable {
    public struct Configuration: Sendable {
        public var amqpURLs: String
        public var databaseURL: String
        public var topologyPath: String
        public var catalogDirectory: String
        public var databaseConnections: Int
        /// How long in-flight batches may take to finish after SIGTERM.
        public var gracePeriod: Duration
        /// One consumer (`warren consume NAME`), or every one with a module (`warren run`).
        public var only: String?
        /// `warren run` also serves HTTP (`warren serve`'s server) and relays the outbox.
        public var http: HTTPServer.Configuration?
        public var outboxRelay: OutboxRelaySettings?
        /// Where `/metrics` is served when there is no HTTP server (`warren consume`,
        /// `warren run --no-http`).
        public var metrics: MetricsSettings?

        public init(
            amqpURLs: String, databaseURL: String, topologyPath: String, catalogDirectory: String,
            databaseConnections: Int = 4, gracePeriod: Duration = .seconds(30), only: String? = nil,
            http: HTTPServer.Configuration? = nil, outboxRelay: OutboxRelaySettings? = nil, metrics: MetricsSettings? = nil
        ) {
            self.metrics = metrics
            self.http = http
            self.outboxRelay = outboxRelay
            self.amqpURLs = amqpURLs
            self.databaseURL = databaseURL
            self.topologyPath = topologyPath
            self.catalogDirectory = catalogDirectory
            self.databaseConnections = databaseConnections
            self.gracePeriod = gracePeriod
            self.only = only
        }
    }

    public let configuration: Configuration
    public let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT. Throws `ApplicationError` for what an operator must fix
    /// (configuration, broker unreachable at start, topology not applied).
    public func run() async throws {
        let database = PostgresPool(conninfo: configuration.databaseURL, maxConnections: configuration.databaseConnections, logger: logger)
        let shared = try ApplicationError.sharedStore(logger: logger)
        let handoff = DeliveryHandoff(logger: logger)
        let modules = try Self.modules(database: database, shared: shared, handoff: handoff, logger: logger)
        let (topology, catalog, specs) = try loadConfiguration(modules: modules)
        var amqpConfiguration = try ApplicationError.amqpConfiguration(
            urls: configuration.amqpURLs, connectionName: "warren \(configuration.only ?? "run")")
        amqpConfiguration.publishTimeout = .seconds(30)
        let amqp = AMQPConnection(amqpConfiguration, logger: logger)
        let runtimes = specs.map { spec in
            ConsumerRuntime(
                settings: ConsumerSettings(spec), handler: modules[spec.name]!, amqp: amqp, database: database, catalog: catalog,
                logger: logger)
        }
        let refresh = try MetricsSettings.refreshInterval(ProcessInfo.processInfo.environment)
        var consumers: [any Service] = []
        if specs.contains(where: { $0.name == WebhookFanOut().name }) {
            // The fan-out stores deliveries and hands them over; the dispatcher sends them.
            // Listed before the consumers, it stops after them (services stop in reverse
            // order): it takes the fan-out's last hand-offs before it drains.
            consumers.append(
                WebhookDispatcher(
                    settings: try Self.webhookSettings(), database: database, conninfo: configuration.databaseURL,
                    destinations: DestinationGuard.from(environment: ProcessInfo.processInfo.environment), logger: logger,
                    // WARREN_WEBHOOK_RATE for all processes together with Redis, per process without.
                    bucket: { rate in shared.rateLimiter(name: "webhooks", rate: rate, per: .seconds(1)) }, handoff: handoff))
        }
        consumers += runtimes as [any Service]
        consumers.append(QueueDepthMonitor(amqp: amqp, consumers: specs.map { ConsumerSettings($0) }, interval: refresh, logger: logger))
        if var relay = configuration.outboxRelay {
            relay.metricsInterval = refresh
            consumers.append(OutboxRelay(settings: relay, amqp: amqp, database: database, conninfo: configuration.databaseURL, logger: logger))
        }
        let readiness = Readiness([.broker(amqp), .database(database), .subscribed(runtimes)])
        // Last: on shutdown it stops taking requests first.
        if let http = configuration.http {
            consumers.append(
                HTTPServer(
                    configuration: http, amqp: amqp, database: database, catalog: catalog, exchange: topology.exchange.name,
                    readiness: readiness, shared: shared, logger: logger))
        } else if let metrics = configuration.metrics {
            consumers.append(metrics.server(readiness, logger: logger))
        }
        var group = ServiceGroupConfiguration(services: ApplicationError.traced([amqp, database, shared] + consumers), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = configuration.gracePeriod
        logger.info("warren.started", metadata: ["consumers": "\(specs.map(\.name).joined(separator: ","))", "exchange": "\(topology.exchange.name)"])
        try await ApplicationError.run(ServiceGroup(configuration: group))
        logger.info("warren.stopped")
    }

    /// Every module, with email.notifications (SendGrid when SENDGRID_API_KEY is set, else
    /// the log provider) and payments.customers (only when STRIPE_SECRET_KEY is set). The
    /// providers' rates are shared by every process through Redis when it is configured.
    static func modules(database: PostgresPool, shared: SharedStore, handoff: DeliveryHandoff, logger: Logger) throws(ApplicationError) -> [String: ConsumerHandler] {
        do {
            var providers = ProviderSettings()
            providers.bucket = { provider, rate in shared.rateLimiter(name: "provider:\(provider)", rate: rate, per: .seconds(1)) }
            let email = try providers.emailProvider(logger: logger, record: EmailNotifications.emailLog(in: database))
            let payments = try providers.paymentProvider(logger: logger)
            var modules = ConsumerModules.make(
                email: EmailNotifications(provider: email, settings: .init(), logger: logger),
                payments: payments.map { PaymentsCustomers(provider: $0) })
            let webhooks = WebhookFanOut(shared: shared, handoff: handoff)
            modules[webhooks.name] = .transactional(webhooks)
            return modules
        } catch {
            throw ApplicationError("\(error)")
        }
    }

    static func webhookSettings() throws(ApplicationError) -> WebhookDispatcherSettings {
        do throws(WebhookError) {
            return try WebhookDispatcherSettings.from(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ApplicationError(error.description)
        }
    }

    private func loadConfiguration(modules: [String: ConsumerHandler]) throws(ApplicationError) -> (Topology, EventCatalog, [ConsumerSpec]) {
        let topology: Topology
        let catalog: EventCatalog
        do {
            topology = try Topology.load(path: configuration.topologyPath)
            catalog = try EventCatalog(directory: configuration.catalogDirectory)
        } catch {
            throw ApplicationError("\(error)")
        }
        if let name = configuration.only {
            guard let spec = topology.consumer(named: name) else {
                throw ApplicationError(
                    "no consumer '\(name)' in \(configuration.topologyPath); known: \(topology.consumers.map(\.name).joined(separator: ", "))")
            }
            guard spec.enabled else {
                throw ApplicationError(
                    "consumer '\(name)' is disabled in \(configuration.topologyPath) (enabled: false), so its queue is bound to nothing; set enabled: true and run 'warren topology apply' first")
            }
            guard modules[name] != nil else {
                if name == "payments.customers" { throw ApplicationError("consumer 'payments.customers' needs STRIPE_SECRET_KEY") }
                throw ApplicationError("consumer '\(name)' has no module in this release; implemented: \(modules.keys.sorted().joined(separator: ", "))")
            }
            return (topology, catalog, [spec])
        }
        for skipped in topology.consumers where !skipped.enabled {
            logger.notice("warren.consumer.skipped", metadata: ["consumer": "\(skipped.name)", "reason": "disabled in the topology (enabled: false)"])
        }
        // Enabled but not runnable here: its queue is bound and fills until it runs
        // somewhere (`warren consume`) or is disabled.
        for skipped in topology.consumers where skipped.enabled && modules[skipped.name] == nil {
            let reason = skipped.name == "payments.customers" ? "STRIPE_SECRET_KEY is not set" : "no module in this release"
            logger.warning("warren.consumer.skipped", metadata: [
                "consumer": "\(skipped.name)", "reason": "\(reason); its queue stays bound and grows unless another process consumes it or the topology sets enabled: false",
            ])
        }
        return (topology, catalog, topology.consumers.filter { $0.enabled && modules[$0.name] != nil })
    }
}

extension Readiness.Check {
    /// Every consumer is subscribed (the broker delivers to it).
    static func subscribed(_ runtimes: [ConsumerRuntime]) -> Self {
        Self("consumers") {
            let waiting = runtimes.filter { !$0.isSubscribed }.map(\.name)
            return waiting.isEmpty ? nil : "not subscribed: \(waiting.joined(separator: ", "))"
        }
    }
}
