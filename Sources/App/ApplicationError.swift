import AMQP
import Foundation
import Logging
import ServiceLifecycle
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
