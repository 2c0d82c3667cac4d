import ArgumentParser
import WarrenCore

@main
struct Warren: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "Event integration on RabbitMQ and PostgreSQL.",
        version: WarrenVersion.current,
        subcommands: [Services.self, Migrate.self, TopologyCommand.self, Publish.self, Consume.self, Run.self, Serve.self, Status.self, Keys.self, WebhooksCommand.self, Bench.self, DLQCommand.self, OutboxCommand.self]
    )
}
