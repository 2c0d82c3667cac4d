import AMQP
import ArgumentParser
import Foundation
import Operations
import Postgres
import Topology
import WarrenCore

/// `warren status`: each consumer of the topology in one table — queue depth, DLQ depth,
/// consumers connected, last failure.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each consumer's queue depth, dead letters, connected consumers and last failure.")

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("file"), help: "The topology file. [env: WARREN_TOPOLOGY]")
    var topology: String = Topology.defaultPath

    @Flag(help: "One JSON array, for scripts.")
    var json = false

    func run() async throws {
        try await oneShot {
            let topology = try Topology.load(path: self.topology)
            var logger = options.logger("warren.status", oneShot: true)
            if !options.verbose { logger.logLevel = .error }  // a missing queue's 404 is shown in the table
            let statuses = try await AMQPConnection.withConnection(
                try AMQPConfiguration(urls: options.amqpURL, connectionName: "warren status"), logger: logger
            ) { connection in
                try await withDatabase(options, label: "warren.status", logger: logger) { database in
                    try await ConsumerStatus.read(
                        topology.consumers.map { ($0.name, $0.queueName, $0.deadLetterQueueName) }, connection: connection, database: database)
                }
            }
            if json {
                print(String(decoding: JSONValue.array(statuses.map(\.json)).serialized(), as: UTF8.self))
            } else {
                print(Self.table(statuses))
            }
        }
    }

    static func table(_ statuses: [ConsumerStatus]) -> String {
        let header = ["CONSUMER", "QUEUE", "DLQ", "CONSUMERS", "LAST FAILURE"]
        let rows = statuses.map { status -> [String] in
            [
                status.consumer, status.messages.map(String.init) ?? "not declared", status.deadLetters.map(String.init) ?? "not declared",
                status.consumers.map(String.init) ?? "-",
                status.lastFailure.map { "\(RFC3339.format($0.at)) \($0.errorType): \($0.error) (→ \($0.destination))" } ?? "-",
            ]
        }
        return textTable([header] + rows)
    }
}

extension ConsumerStatus {
    var json: JSONValue {
        func count(_ value: Int?) -> JSONValue { value.map { .integer(Int64($0)) } ?? .null }
        return .object([
            "consumer": .string(consumer), "queue": .string(queue), "dead_letter_queue": .string(deadLetterQueue),
            "messages": count(messages), "dead_letters": count(deadLetters), "consumers": count(consumers),
            "last_failure": lastFailure.map { failure in
                .object([
                    "at": .string(RFC3339.format(failure.at)), "error_type": .string(failure.errorType), "error": .string(failure.error),
                    "destination": .string(failure.destination), "message_id": failure.messageID.map { .string($0) } ?? .null,
                ])
            } ?? .null,
        ])
    }
}
