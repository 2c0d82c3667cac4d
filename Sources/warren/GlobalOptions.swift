import ArgumentParser
import Foundation
import Logging
import Postgres

/// Options every command shares. Each falls back to its environment variable (see the
/// README's configuration table), then to the local services `scripts/services` starts.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL(s), comma-separated for failover. [env: WARREN_AMQP_URL]")
    var amqpURL: String = Environment.value("WARREN_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/%2f")

    @Option(name: .customLong("database-url"), help: "PostgreSQL URI or conninfo. [env: WARREN_DATABASE_URL]")
    var databaseURL: String = Environment.value("WARREN_DATABASE_URL", default: "postgresql://warren:warren@127.0.0.1:5432/warren")

    @Flag(name: .long, help: "Print diagnostics (debug logs) on stderr.")
    var verbose = false

    @Option(name: .customLong("log-format"), help: "Log format of long-running commands: text or json.")
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument, Sendable { case text, json }

    /// Bootstraps logging once for the process; libraries only receive the `Logger`.
    /// One-shot commands print results, not logs: only warnings, unless `--verbose`.
    func logger(_ label: String, oneShot: Bool = false) -> Logger {
        LoggingBootstrap.once(format: logFormat, level: verbose ? .debug : (oneShot ? .warning : .info))
        return Logger(label: label)
    }
}

enum Environment {
    static func value(_ name: String, default fallback: String) -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return fallback }
        return value
    }
}

/// Runs a one-shot command's body and turns any error into one line on stderr and exit 1.
func oneShot(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("warren: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// A one-connection pool for a one-shot command's `body`, closed afterwards whatever happens;
/// it logs to `logger` when given, else to a one-shot logger labelled `label`.
func withDatabase<T: Sendable>(
    _ options: GlobalOptions, label: String, logger: Logger? = nil, _ body: (PostgresPool) async throws -> T
) async throws -> T {
    let database = PostgresPool(conninfo: options.databaseURL, maxConnections: 1, logger: logger ?? options.logger(label, oneShot: true))
    do {
        let result = try await body(database)
        await database.close()
        return result
    } catch {
        await database.close()
        throw error
    }
}
