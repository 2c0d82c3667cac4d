import App
import ArgumentParser
import Foundation
import Observability
import Operations
import Postgres
import WarrenCore

/// `warren outbox relay`: publishes what upstream services wrote to `warren_outbox`;
/// `parked` and `retry`: the rows it set aside.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "The transactional outbox.", subcommands: [Relay.self, Parked.self, Retry.self])
}

extension OutboxCommand {
    struct Parked: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows the relay parked (unroutable or unpublishable), oldest first, with the reason.")

        @OptionGroup var options: GlobalOptions

        @Option(help: "At most this many rows.")
        var limit: Int = 100

        @Flag(help: "Print JSON for scripts.")
        var json = false

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
        }

        func run() async throws {
            try await oneShot {
                let rows = try await withDatabase(options, label: "warren.outbox") { try await Outbox.parked(limit: limit, in: $0) }
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    encoder.dateEncodingStrategy = .custom { date, encoder in
                        var container = encoder.singleValueContainer()
                        try container.encode(RFC3339.format(date))
                    }
                    print(String(decoding: try encoder.encode(rows), as: UTF8.self))
                } else if rows.isEmpty {
                    print("no parked rows")
                } else {
                    let header = ["ID", "EVENT ID", "TYPE", "PARKED", "REASON"]
                    print(textTable([header] + rows.map { ["\($0.id)", $0.eventID, $0.eventType, RFC3339.format($0.parkedAt), $0.reason] }))
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put parked rows back in line for the relay (after fixing what parked them, e.g. a missing binding).",
            discussion: "They keep their place: the relay publishes in id order. A row that still cannot be published is parked again.")

        @OptionGroup var options: GlobalOptions

        @Option(name: .customLong("id"), help: "A parked row's id, from `warren outbox parked` (repeatable).")
        var ids: [Int64] = []

        @Flag(help: "Every parked row.")
        var all = false

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("give --id ID (repeatable) or --all") }
        }

        func run() async throws {
            try await oneShot {
                let requeued = try await withDatabase(options, label: "warren.outbox") { try await Outbox.retry(ids: all ? nil : ids, in: $0) }
                let missing = Set(ids).subtracting(requeued).sorted()
                print("re-queued \(requeued.count) row\(requeued.count == 1 ? "" : "s")\(requeued.isEmpty ? "" : ": " + requeued.map(String.init).joined(separator: ", "))")
                if !missing.isEmpty {
                    throw OutboxCommandError("not parked (or no such row): \(missing.map(String.init).joined(separator: ", "))")
                }
            }
        }
    }
}

private struct OutboxCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
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
