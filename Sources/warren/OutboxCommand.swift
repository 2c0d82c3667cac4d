import App
import ArgumentParser
import Observability
import Operations

/// `warren outbox relay`: publishes what upstream services wrote to `warren_outbox`.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "The transactional outbox.", subcommands: [Relay.self])
}

extension OutboxCommand {
    struct Relay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish pending outbox rows in order with confirms until SIGTERM/SIGINT.",
            discussion: """
                Several relays may run at once: rows are locked FOR UPDATE SKIP LOCKED. Wakes on NOTIFY warren_outbox, polling every --poll-interval as a fallback. Unroutable events are parked (parked_at, park_reason) instead of retried.
                """)

        @OptionGroup var options: GlobalOptions

        @Option(help: "Keep published rows this long before deleting them (30m, 12h, 7d).")
        var retention: String = "7d"

        @Option(name: .customLong("batch-size"), help: "Rows published per transaction.")
        var batchSize: Int = 100

        @Option(name: .customLong("poll-interval"), help: "Milliseconds between polls when no notification arrives.")
        var pollInterval: Int = 1000

        @Option(help: "The exchange to publish to.")
        var exchange: String = "events"

        @OptionGroup var metrics: MetricsOptions

        func validate() throws {
            guard AgeText.parse(retention) != nil else { throw ValidationError("'\(retention)' is not a duration like 30m, 12h or 7d") }
            guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
            guard pollInterval > 0 else { throw ValidationError("--poll-interval must be positive") }
        }

        func run() async throws {
            WarrenMetrics.bootstrap()
            try ApplicationError.bootstrapTracing()
            let logger = options.logger("warren.outbox")
            var settings = OutboxRelaySettings()
            settings.retention = AgeText.parse(retention)!
            settings.batchSize = batchSize
            settings.pollInterval = .milliseconds(pollInterval)
            settings.exchange = exchange
            try await oneShot {
                let application = OutboxRelayApplication(
                    amqpURLs: options.amqpURL, databaseURL: options.databaseURL, settings: settings, metrics: try metrics.settings(),
                    logger: logger)
                try await application.run()
            }
        }
    }
}
