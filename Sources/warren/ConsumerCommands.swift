import App
import HTTPAPI
import Operations
import ArgumentParser
import Foundation
import Observability
import Topology
import WarrenCore

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
    static let configuration = CommandConfiguration(
        abstract: "Run every consumer, the outbox relay and the HTTP server in one process until SIGTERM/SIGINT.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var consumerOptions: ConsumerOptions
    @OptionGroup var http: HTTPOptions

    @Flag(name: .customLong("no-http"), help: "Do not run the HTTP server.")
    var noHTTP = false

    @Flag(name: .customLong("no-outbox-relay"), help: "Do not run the outbox relay.")
    var noOutboxRelay = false

    func run() async throws {
        try await oneShot {
            try await ConsumerProcess(options: options, consumerOptions: consumerOptions).run(
                only: nil, http: noHTTP ? nil : try http.configuration(), outboxRelay: noOutboxRelay ? nil : OutboxRelaySettings())
        }
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

    @OptionGroup var metrics: MetricsOptions
}

/// `--metrics-address`: where a process without an HTTP server serves /metrics, /healthz, /readyz.
struct MetricsOptions: ParsableArguments {
    @Option(
        name: .customLong("metrics-address"),
        help: "Serve /metrics, /healthz and /readyz on HOST:PORT (off when not set; warren run and serve use their HTTP port). [env: WARREN_METRICS_ADDRESS]")
    var address: String = Environment.value("WARREN_METRICS_ADDRESS", default: "")

    func settings() throws -> MetricsSettings? {
        try MetricsSettings.from(address: address, environment: ProcessInfo.processInfo.environment)
    }
}

/// Hands the parsed options to `ConsumerApplication`; a failure is one line on stderr, exit 1.
struct ConsumerProcess {
    let options: GlobalOptions
    let consumerOptions: ConsumerOptions

    func run(only name: String?, http: HTTPServer.Configuration? = nil, outboxRelay: OutboxRelaySettings? = nil) async throws {
        try await oneShot {
            WarrenMetrics.bootstrap()
            try ApplicationError.bootstrapTracing()
            let application = ConsumerApplication(
                configuration: .init(
                    amqpURLs: options.amqpURL, databaseURL: options.databaseURL, topologyPath: consumerOptions.topology,
                    catalogDirectory: consumerOptions.catalog, databaseConnections: consumerOptions.databaseConnections,
                    gracePeriod: .seconds(consumerOptions.gracePeriod), only: name, http: http, outboxRelay: outboxRelay,
                    metrics: try consumerOptions.metrics.settings()),
                logger: options.logger("warren"))
            try await application.run()
        }
    }
}
