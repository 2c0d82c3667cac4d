import AMQP
import Adapters
import ArgumentParser
import Consumers
import Logging
import Postgres
import ServiceLifecycle
import Topology
import WarrenCore
import Foundation

/// `warren consume NAME`: one consumer process, as deployed per routing key.
struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one consumer from the topology until SIGTERM/SIGINT.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var consumerOptions: ConsumerOptions

    @Argument(help: "The consumer's name in the topology, e.g. users.projection.")
    var name: String

    func run() async throws {
        try await ConsumerProcess(options: options, consumerOptions: consumerOptions).run(only: name)
    }
}

/// `warren run`: every consumer that has a module, in one process (the embedded default).
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every consumer in one process until SIGTERM/SIGINT.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var consumerOptions: ConsumerOptions

    func run() async throws {
        try await ConsumerProcess(options: options, consumerOptions: consumerOptions).run(only: nil)
    }
}

struct ConsumerOptions: ParsableArguments {
    @Option(name: .customLong("file"), help: "The topology file. [env: WARREN_TOPOLOGY]")
    var topology: String = Topology.defaultPath

    @Option(help: "Directory of event schemas. [env: WARREN_CATALOG]")
    var catalog: String = Environment.value(EventCatalog.environmentVariable, default: EventCatalog.defaultDirectory)

    @Option(name: .customLong("grace-period"), help: "Seconds to finish in-flight batches after SIGTERM before exiting anyway.")
    var gracePeriod: Int = 30

    @Option(name: .customLong("database-connections"), help: "PostgreSQL connections in the pool.")
    var databaseConnections: Int = 4
}

/// Sets up what consumers share (broker connection, database pool, catalog) and runs the
/// selected consumers as services with graceful shutdown on SIGTERM/SIGINT.
struct ConsumerProcess {
    let options: GlobalOptions
    let consumerOptions: ConsumerOptions

    func run(only name: String?) async throws {
        let logger = options.logger("warren")
        let database = PostgresPool(conninfo: options.databaseURL, maxConnections: consumerOptions.databaseConnections, logger: logger)
        let modules = try providerModules(database: database, logger: logger)
        let (topology, catalog, specs) = try await loadConfiguration(only: name, modules: modules, logger: logger)
        let amqp: AMQPConnection
        do {
            var configuration = try AMQPConfiguration(urls: options.amqpURL, connectionName: "warren \(name ?? "run")")
            configuration.publishTimeout = .seconds(30)
            amqp = try await AMQPConnection.connect(configuration, logger: logger)
        } catch {
            try fail("cannot connect to the broker: \(error)")
        }
        let services: [any Service] = specs.map { spec in
            ConsumerRuntime(
                settings: ConsumerSettings(spec), module: modules[spec.name]!, amqp: amqp, database: database,
                catalog: catalog, logger: logger)
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(consumerOptions.gracePeriod)
        logger.info("warren.started", metadata: ["consumers": "\(specs.map(\.name).joined(separator: ","))", "exchange": "\(topology.exchange.name)"])
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            await amqp.close()
            await database.close()
            if let error = error as? AMQPError, error.replyCode == 404 {
                try fail("\(error.replyText ?? error.description): run `warren topology apply` first")
            }
            try fail("\(error)")
        }
        await amqp.close()
        await database.close()
        logger.info("warren.stopped")
    }

    /// Every module, with email.notifications (SendGrid when SENDGRID_API_KEY is set, else
    /// the log provider) and payments.customers (only when STRIPE_SECRET_KEY is set).
    private func providerModules(database: PostgresPool, logger: Logger) throws -> [String: any ConsumerModule] {
        do {
            let providers = ProviderSettings()
            let email = try providers.emailProvider(logger: logger, record: EmailNotifications.emailLog(in: database))
            let payments = try providers.paymentProvider(logger: logger)
            return ConsumerModules.make(
                email: EmailNotifications(provider: email, settings: .init(), records: database, logger: logger),
                payments: payments.map { PaymentsCustomers(provider: $0) })
        } catch {
            try fail("\(error)")
        }
    }

    private func loadConfiguration(only name: String?, modules: [String: any ConsumerModule], logger: Logger) async throws -> (Topology, EventCatalog, [ConsumerSpec]) {
        do {
            let topology = try Topology.load(path: consumerOptions.topology)
            let catalog = try EventCatalog(directory: consumerOptions.catalog)
            if let name {
                guard let spec = topology.consumer(named: name) else {
                    throw ValidationError("no consumer '\(name)' in \(consumerOptions.topology); known: \(topology.consumers.map(\.name).joined(separator: ", "))")
                }
                guard modules[name] != nil else {
                    if name == "payments.customers" { throw ValidationError("consumer 'payments.customers' needs STRIPE_SECRET_KEY") }
                    throw ValidationError("consumer '\(name)' has no module in this release; implemented: \(modules.keys.sorted().joined(separator: ", "))")
                }
                return (topology, catalog, [spec])
            }
            let specs = topology.consumers.filter { modules[$0.name] != nil }
            for skipped in topology.consumers where modules[skipped.name] == nil {
                let reason = skipped.name == "payments.customers" ? "STRIPE_SECRET_KEY is not set" : "no module in this release"
                logger.notice("warren.consumer.skipped", metadata: ["consumer": "\(skipped.name)", "reason": "\(reason)"])
            }
            return (topology, catalog, specs)
        } catch {
            try fail("\(error)")
        }
    }

    /// One line on stderr, exit 1 (the contract for failures before logs matter).
    private func fail(_ message: String) throws -> Never {
        FileHandle.standardError.write(Data("warren: \(message)\n".utf8))
        throw ExitCode.failure
    }
}
