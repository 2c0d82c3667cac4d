import App
import ArgumentParser
import Foundation
import HTTPAPI
import Logging
import Observability
import Postgres
import SharedState
import WarrenCore

/// `warren serve`: the HTTP front door alone, to scale it apart from the consumers.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP server (publish API, Stripe webhooks, health) until SIGTERM/SIGINT.",
        discussion: """
            Secrets come from the environment only: STRIPE_WEBHOOK_SECRET (comma-separated during rotation). \
            WARREN_STRIPE_WEBHOOK_TOLERANCE (seconds, default 300), WARREN_HTTP_MAX_BODY (bytes, default 262144).
            """)

    @OptionGroup var options: GlobalOptions
    @OptionGroup var http: HTTPOptions

    @Option(help: "Directory of event schemas. [env: WARREN_CATALOG]")
    var catalog: String = Environment.value(EventCatalog.environmentVariable, default: EventCatalog.defaultDirectory)

    @Option(help: "The exchange events are published to.")
    var exchange: String = "events"

    @Flag(help: "Print the OpenAPI 3.1 document of the HTTP API and exit.")
    var openapi = false

    func run() async throws {
        if openapi {
            print(OpenAPIDocument.json)
            return
        }
        try await oneShot {
            WarrenMetrics.bootstrap()
            try ApplicationError.bootstrapTracing()
            let application = ServeApplication(
                amqpURLs: options.amqpURL, databaseURL: options.databaseURL, catalogDirectory: catalog, exchange: exchange,
                http: try http.configuration(), logger: options.logger("warren"))
            try await application.run()
        }
    }
}

struct HTTPOptions: ParsableArguments {
    @Option(help: "Where the HTTP server listens, HOST:PORT. [env: WARREN_HTTP_ADDRESS]")
    var address: String = Environment.value("WARREN_HTTP_ADDRESS", default: "127.0.0.1:8080")

    func configuration() throws -> HTTPServer.Configuration {
        try HTTPServer.Configuration.from(address: address, environment: ProcessInfo.processInfo.environment)
    }
}

/// `warren keys create|list|revoke`: the API keys of `POST /v1/events`.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the API keys of the HTTP publish API.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once (only its hash is stored).")

        @OptionGroup var options: GlobalOptions

        @Option(help: "A unique name for the key, e.g. the calling service.")
        var name: String

        @Option(name: .customLong("events"), parsing: .upToNextOption, help: "Event-type patterns it may publish (user.*, #).")
        var events: [String] = []

        @Flag(help: "May use the management endpoints.")
        var admin = false

        @Option(help: "Requests per second, e.g. 50/s or 50.")
        var rate: String?

        func run() async throws {
            try await oneShot {
                var rate: Int?
                if let text = self.rate {
                    let digits = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
                    guard let value = Int(digits), value > 0 else { throw ValidationError("--rate takes a positive number of requests per second, e.g. 50/s") }
                    rate = value
                }
                let key = APIKey(name: name, eventPatterns: events, admin: admin, ratePerSecond: rate)
                let secret = try await withKeyStore(options) { try await $0.create(key) }
                print(secret)
                if events.isEmpty, !admin {
                    FileHandle.standardError.write(Data("warren: note: key '\(name)' has no --events pattern and may publish nothing\n".utf8))
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never the keys themselves).")

        @OptionGroup var options: GlobalOptions

        @Flag(help: "One JSON array, for scripts.")
        var json = false

        func run() async throws {
            try await oneShot {
                let keys = try await withKeyStore(options) { try await $0.list() }
                if json {
                    print(String(decoding: JSONValue.array(keys.map(\.json)).serialized(), as: UTF8.self))
                    return
                }
                for key in keys {
                    var line = "\(key.name)\tevents=\(key.eventPatterns.isEmpty ? "-" : key.eventPatterns.joined(separator: ","))"
                    if key.admin { line += "\tadmin" }
                    if let rate = key.ratePerSecond { line += "\trate=\(rate)/s" }
                    if let revoked = key.revokedAt { line += "\trevoked=\(RFC3339.format(revoked))" }
                    print(line)
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key at once.")

        @OptionGroup var options: GlobalOptions

        @Argument(help: "The key's name.")
        var name: String

        func run() async throws {
            try await oneShot {
                let (revoked, told) = try await withKeyStore(options) { try await $0.revoke(name) }
                guard revoked else { throw ApplicationError("no active key named '\(name)'") }
                print("revoked \(name)")
                if !told {
                    // The database has it; replicas learn it when their cached copies expire.
                    FileHandle.standardError.write(Data(
                        "warning: Redis could not be told: replicas may accept the key for up to twice WARREN_HTTP_KEY_CACHE\n".utf8))
                }
            }
        }
    }
}

private func withKeyStore<T: Sendable>(_ options: GlobalOptions, _ body: (APIKeyStore) async throws -> T) async throws -> T {
    let logger = options.logger("warren.keys", oneShot: true)
    return try await withDatabase(options, label: "warren.keys", logger: logger) { database in
        let shared = try ApplicationError.sharedStore(logger: logger)
        do {
            let result = try await body(APIKeyStore(database: database, shared: shared))
            await shared.redis?.close()
            return result
        } catch {
            await shared.redis?.close()
            throw error
        }
    }
}

extension APIKey {
    /// What `warren keys list --json` prints of a key (never the key itself).
    var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "events": .array(eventPatterns.map { .string($0) }), "admin": .bool(admin),
            "rate_per_second": ratePerSecond.map { .integer(Int64($0)) } ?? .null,
            "revoked_at": revokedAt.map { .string(RFC3339.format($0)) } ?? .null,
        ]
        if let createdAt { object["created_at"] = .string(RFC3339.format(createdAt)) }
        return .object(object)
    }
}
