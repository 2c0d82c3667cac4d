import AMQP
import ArgumentParser
import Foundation
import Logging
import Topology

/// `warren topology plan|apply|export`: the broker topology as code.
struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show, apply or export the broker topology that topology/topology.yaml declares.",
        subcommands: [Plan.self, Apply.self, Export.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "The topology file. [env: WARREN_TOPOLOGY]")
        var file: String = Topology.defaultPath
    }

    /// Where `plan` and `apply` read the live state from.
    struct Management: ParsableArguments {
        @Option(name: .customLong("management-url"), help: "RabbitMQ management API; credentials default to the AMQP URL's. [env: WARREN_MANAGEMENT_URL]")
        var managementURL: String = Environment.value("WARREN_MANAGEMENT_URL", default: "http://127.0.0.1:15672")

        func live(_ declarations: TopologyDeclarations, amqpURL: String) async throws -> LiveTopology {
            let client = try ManagementClient.forBroker(amqpURL: amqpURL, managementURL: managementURL)
            return try await client.liveTopology(exchange: declarations.exchange.name)
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what apply would change on the live broker (reads the management API).")

        @OptionGroup var options: GlobalOptions
        @OptionGroup var topology: Options
        @OptionGroup var management: Management

        @Flag(help: "Show the bindings the file no longer has as apply --prune would remove them.")
        var prune = false

        func run() async throws {
            try await oneShot {
                let declarations = try Topology.load(path: topology.file).declarations
                let live: LiveTopology
                do {
                    live = try await management.live(declarations, amqpURL: options.amqpURL)
                } catch let error as TopologyError where error.code == .managementAPI {
                    throw TopologyError(.managementAPI, "cannot plan: \(error.message) (plan needs the rabbitmq_management plugin; apply works without it)")
                }
                let plan = TopologyPlan(desired: declarations, live: live)
                if plan.isEmpty(prune: prune) { print("no changes") }
                for line in plan.lines(prune: prune) { print(line) }
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare the exchange, queues and bindings (idempotent); never deletes a queue.",
            discussion: "A live queue whose arguments differ from the file is reported and left alone; the command then exits 1.")

        @OptionGroup var options: GlobalOptions
        @OptionGroup var topology: Options
        @OptionGroup var management: Management

        @Flag(help: "Also remove bindings from the exchange that the file no longer has (needs the management API).")
        var prune = false

        func run() async throws {
            try await oneShot {
                let declarations = try Topology.load(path: topology.file).declarations
                // The diff is only for the report (and --prune): declaring works without it.
                var plan: TopologyPlan?
                var unreachable: String?
                do {
                    plan = TopologyPlan(desired: declarations, live: try await management.live(declarations, amqpURL: options.amqpURL))
                } catch let error as TopologyError where error.code == .managementAPI {
                    if prune { throw TopologyError(.managementAPI, "--prune needs the management API: \(error.message)") }
                    unreachable = error.message
                }

                var logger = options.logger("warren.topology")
                if !options.verbose { logger.logLevel = .error }  // a refused declare is reported below, not as a log line
                let conflicts = try await AMQPConnection.withConnection(
                    AMQPConfiguration(urls: options.amqpURL, connectionName: "warren-topology"), logger: logger
                ) { connection in
                    let applier = TopologyApplier(channel: try await connection.openChannel(confirms: false), logger: logger)
                    let conflicts = try await applier.apply(declarations)
                    if let plan { try await applier.removeBindings(plan.bindingsOfDisabledConsumers) }
                    if prune, let plan { try await applier.removeBindings(plan.bindingsToRemove) }
                    return conflicts
                }

                if let plan {
                    for change in plan.changes {
                        if case .conflict = change { continue }
                        print(change.line(prune: prune))
                    }
                    print("= \(plan.unchanged) unchanged")
                } else if let unreachable {
                    let disabled = declarations.unbound.isEmpty ? "" : ", unbound \(declarations.unbound.count) of disabled consumers"
                    print("declared exchange \(declarations.exchange.name), \(declarations.queues.count) queues, \(declarations.bindings.count) bindings\(disabled) (cannot show what changed: \(unreachable))")
                }
                guard conflicts.isEmpty else {
                    for conflict in conflicts { FileHandle.standardError.write(Data("warren: \(conflict)\n".utf8)) }
                    throw ExitCode.failure
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write RabbitMQ definitions JSON (for rabbitmqctl import_definitions).")

        @OptionGroup var topology: Options

        @Option(help: "The vhost the definitions name; it must exist where they are imported.")
        var vhost = "/"

        @Option(help: "Write to this file instead of stdout.")
        var output: String?

        func run() async throws {
            try await oneShot {
                let declarations = try Topology.load(path: topology.file).declarations
                var json = DefinitionsExport(declarations, vhost: vhost).json()
                json.append(UInt8(ascii: "\n"))
                if let output {
                    try json.write(to: URL(fileURLWithPath: output), options: .atomic)
                } else {
                    FileHandle.standardOutput.write(json)
                }
            }
        }
    }
}
