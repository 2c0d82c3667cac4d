import AMQP
import Foundation
import Logging
import Testing

/// Where the services that `scripts/services start` runs are, overridable by the
/// environment as in production.
enum TestEnvironment {
    static let amqpURL = ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f"
    static let databaseURL = ProcessInfo.processInfo.environment["WARREN_DATABASE_URL"] ?? "postgresql://warren:warren@127.0.0.1:5432/warren"
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let servicesScript = ProcessInfo.processInfo.environment["WARREN_SERVICES_SCRIPT"] ?? repositoryRoot.appendingPathComponent("scripts/services").path
    static let tlsDirectory = ProcessInfo.processInfo.environment["WARREN_TLS_DIR"] ?? repositoryRoot.appendingPathComponent(".data/tls").path

    static var logger: Logger {
        var logger = Logger(label: "warren.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["WARREN_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }

    /// Runs `scripts/services ARGS…` (e.g. `ctl close_connection …`) and returns its stdout.
    @discardableResult
    static func services(_ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: servicesScript)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestFailure("scripts/services \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }

    static func uniqueName(_ prefix: String) -> String {
        "test.\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(30), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestFailure("timed out after \(timeout) waiting for: \(what)")
}

extension AMQPConnection {
    static func forTests(url: String = TestEnvironment.amqpURL, name: String = TestEnvironment.uniqueName("conn"), configure: (inout AMQPConfiguration) -> Void = { _ in }) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(urls: url, connectionName: name)
        configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(1))
        configure(&configuration)
        return try await AMQPConnection.connect(configuration, logger: TestEnvironment.logger)
    }
}
