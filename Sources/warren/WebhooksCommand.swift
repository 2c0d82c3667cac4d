import App
import ArgumentParser
import Foundation
import Postgres
import WarrenCore
import Webhooks

/// `warren webhooks …`: outbound webhook subscriptions, as `/v1/webhooks…` manages them.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks", abstract: "Manage outbound webhook subscriptions and their delivery log.",
        discussion: """
            URLs must be https:// and resolve to public addresses; WARREN_WEBHOOK_HTTP_HOSTS allows plain http for \
            the hosts it names, and WARREN_WEBHOOK_ALLOW_PRIVATE=1 lifts the guard (local development only: unsafe).
            """,
        subcommands: [Create.self, List.self, Show.self, Enable.self, Disable.self, Delete.self, Rotate.self, Deliveries.self, Retry.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Subscribe a URL to events; prints its id and secret (shown only now).")

        @OptionGroup var options: GlobalOptions
        @Option(help: "The endpoint, https://…") var url: String
        @Option(name: .customLong("events"), parsing: .upToNextOption, help: "Event-type patterns it receives (user.*, payment.#, #).")
        var events: [String] = []
        @Option(help: "Its signing secret (default: a new whsec_ secret).") var secret: String?
        @Option(help: "A note for operators.") var description: String?
        @Flag(help: "Print JSON, for scripts.") var json = false

        func run() async throws {
            try await oneShot {
                let (subscription, secret) = try await withSubscriptions(options) {
                    try await $0.create(url: url, eventPatterns: events, secret: self.secret, description: description)
                }
                if json {
                    guard case .object(var object) = subscription.json else { return }
                    object["secret"] = .string(secret)
                    print(String(decoding: JSONValue.object(object).serialized(), as: UTF8.self))
                } else {
                    print("id\t\(subscription.id)\nsecret\t\(secret)")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List subscriptions (never their secrets).")

        @OptionGroup var options: GlobalOptions
        @Flag(help: "One JSON array, for scripts.") var json = false

        func run() async throws {
            try await oneShot {
                let subscriptions = try await withSubscriptions(options) { try await $0.list() }
                if json {
                    print(String(decoding: JSONValue.array(subscriptions.map(\.json)).serialized(), as: UTF8.self))
                    return
                }
                for subscription in subscriptions { print(subscription.line) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one subscription.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id (wh_…).") var id: String
        @Flag(help: "Print JSON, for scripts.") var json = false

        func run() async throws {
            try await oneShot {
                let subscription = try await withSubscriptions(options) { try await $0.get(id) }
                print(json ? String(decoding: subscription.json.serialized(), as: UTF8.self) : subscription.line)
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a subscription (its failure record starts over).")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String

        func run() async throws {
            try await oneShot {
                print(try await withSubscriptions(options) { try await $0.update(id, .init(enabled: true)) }.line)
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a subscription: nothing is sent or fanned out to it until enabled.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String

        func run() async throws {
            try await oneShot {
                print(try await withSubscriptions(options) { try await $0.update(id, .init(enabled: false)) }.line)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a subscription with its pending deliveries and log.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String

        func run() async throws {
            try await oneShot {
                try await withSubscriptions(options) { try await $0.delete(id) }
                print("deleted \(id)")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a subscription a new secret; the old one keeps signing beside it for 24 h. Prints the new secret.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String
        @Option(help: "The new secret (default: a new whsec_ secret).") var secret: String?

        func run() async throws {
            try await oneShot {
                print(try await withSubscriptions(options) { try await $0.rotate(id, secret: secret) }.1)
            }
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The delivery log of a subscription, newest attempt first.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String
        @Option(help: "Only this event's attempts.") var event: String?
        @Option(help: "At most this many attempts (1-1000).") var limit = 100
        @Flag(help: "One JSON array, for scripts.") var json = false

        func run() async throws {
            try await oneShot {
                let attempts = try await withSubscriptions(options) { try await $0.attempts(id, event: event, limit: limit) }
                if json {
                    print(String(decoding: JSONValue.array(attempts.map(\.json)).serialized(), as: UTF8.self))
                    return
                }
                for attempt in attempts {
                    let status = attempt.statusCode.map(String.init) ?? "-"
                    print(
                        "\(RFC3339.format(attempt.attemptedAt))\t\(attempt.eventID)\tattempt=\(attempt.attempt)\t\(attempt.outcome)\tstatus=\(status)"
                            + "\t\(Int(attempt.latencyMilliseconds.rounded())) ms" + (attempt.error.map { "\t\($0)" } ?? ""))
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send one event to a subscription again, now, with a full retry schedule.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subscription's id.") var id: String
        @Argument(help: "The event's id.") var event: String

        func run() async throws {
            try await oneShot {
                try await withSubscriptions(options) { try await $0.retry(id, event: event) }
                print("pending \(id) \(event)")
            }
        }
    }
}

private func withSubscriptions<T: Sendable>(_ options: GlobalOptions, _ body: (WebhookSubscriptions) async throws -> T) async throws -> T {
    try await withDatabase(options, label: "warren.webhooks") { database in
        let environment = ProcessInfo.processInfo.environment
        return try await body(
            WebhookSubscriptions(
                database: database, destinations: DestinationGuard.from(environment: environment), sealer: try SecretSealer.from(environment: environment)))
    }
}

extension WebhookSubscription {
    /// One line of `warren webhooks list`.
    var line: String {
        var line = "\(id)\t\(enabled ? "enabled" : "disabled")\t\(url)\tevents=\(eventPatterns.joined(separator: ","))"
        if let disabledReason, !enabled { line += "\t(\(disabledReason))" }
        if let failingSince { line += "\tfailing since \(RFC3339.format(failingSince))" }
        if let description { line += "\t\(description)" }
        return line
    }
}
