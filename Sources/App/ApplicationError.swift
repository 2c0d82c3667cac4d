import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Observability
import SharedState

/// Why a long-running command could not start or stopped with an error, said in one line
/// for the operator (the CLI prints it on stderr and exits 1). Never holds a secret: the
/// errors it wraps redact URLs and keys themselves.
public struct ApplicationError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension ApplicationError {
    /// The configuration of the broker connection, or why the URLs cannot be used.
    static func amqpConfiguration(urls: String, connectionName: String) throws(ApplicationError) -> AMQPConfiguration {
        do {
            return try AMQPConfiguration(urls: urls, connectionName: connectionName)
        } catch {
            throw ApplicationError("cannot connect to the broker: \(error)")
        }
    }

    /// What the process shares through Redis (`WARREN_REDIS_URL`; none when unset), or
    /// why the settings cannot be used.
    public static func sharedStore(
        environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) throws(ApplicationError) -> SharedStore {
        do {
            return try SharedStore.from(environment: environment, logger: logger)
        } catch {
            throw ApplicationError(error.message)
        }
    }

    /// `services` with the span exporter first (when `WarrenTracing` is on): it stops last,
    /// after flushing the spans of the others.
    public static func traced(_ services: [any Service]) -> [any Service] {
        (WarrenTracing.service.map { [$0] } ?? []) + services
    }

    /// Turns span export on when the environment asks for it (`WarrenTracing`), or says
    /// in one line why its settings cannot be used.
    public static func bootstrapTracing(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ApplicationError) {
        do {
            try WarrenTracing.bootstrap(environment: environment)
        } catch {
            throw ApplicationError("OpenTelemetry export (OTEL_*): \(error)")
        }
    }

    /// Runs `group` until it stops, saying in one line what an operator must fix when the
    /// broker could not be reached or lacks the topology.
    static func run(_ group: ServiceGroup) async throws {
        do {
            try await group.run()
        } catch let error as AMQPError where error.replyCode == 404 {
            throw ApplicationError("\(error.replyText ?? error.description): run `warren topology apply` first")
        } catch let error as AMQPError where [.connectionFailed, .authenticationFailed, .tls, .invalidConfiguration].contains(error.code) {
            throw ApplicationError("cannot connect to the broker: \(error)")
        }
    }
}
