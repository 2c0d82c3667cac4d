import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
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
    /// posix_spawn + waitpid rather than Foundation's Process, whose waitUntilExit can
    /// hang on Linux; stdout goes to a file so daemons the script starts hold no pipe open.
    @discardableResult
    static func services(_ arguments: String...) throws -> String {
        let outputPath = NSTemporaryDirectory() + "warren-services-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ([servicesScript] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, servicesScript, &actions, nil, argv, environ)
        guard spawned == 0 else { throw TestFailure("cannot run \(servicesScript): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exitCode = (status >> 8) & 0xFF
        guard status & 0x7F == 0, exitCode == 0 else {
            throw TestFailure("scripts/services \(arguments.joined(separator: " ")) failed (status \(status)): \(output)")
        }
        return output
    }

    static func uniqueName(_ prefix: String) -> String {
        "test.\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// The broker's management HTTP API (enabled by scripts/services on 127.0.0.1:15672).
enum ManagementAPI {
    static let base = ProcessInfo.processInfo.environment["WARREN_MANAGEMENT_URL"] ?? "http://guest:guest@127.0.0.1:15672"

    static func get(_ path: String) async throws -> Any {
        var request = URLRequest(url: URL(string: base.replacingOccurrences(of: "guest:guest@", with: "") + path)!)
        request.setValue("Basic " + Data("guest:guest".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONSerialization.jsonObject(with: data)
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
