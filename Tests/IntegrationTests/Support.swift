import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Testing

/// Every integration suite nests in this one (`extension Integration { @Suite … }`): some
/// tests restart the broker, raise a memory alarm or stop PostgreSQL, so suites that
/// share the services must never run at the same time.
@Suite(.serialized) enum Integration {}

/// Where the services that `scripts/services start` runs are, overridable by the
/// environment as in production.
enum TestEnvironment {
    static let amqpURL = ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f"
    static let databaseURL = ProcessInfo.processInfo.environment["WARREN_DATABASE_URL"] ?? "postgresql://warren:warren@127.0.0.1:5432/warren"
    static let redisURL = ProcessInfo.processInfo.environment["WARREN_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let servicesScript = ProcessInfo.processInfo.environment["WARREN_SERVICES_SCRIPT"] ?? repositoryRoot.appendingPathComponent("scripts/services").path
    static let tlsDirectory = ProcessInfo.processInfo.environment["WARREN_TLS_DIR"] ?? repositoryRoot.appendingPathComponent(".data/tls").path

    static var logger: Logger {
        var logger = Logger(label: "warren.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["WARREN_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }

    /// The `warren` executable that `swift build --build-tests` built next to the tests.
    static let warrenBinary = ProcessInfo.processInfo.environment["WARREN_BIN"]
        ?? repositoryRoot.appendingPathComponent(".build/debug/warren").path

    /// Runs `scripts/services ARGS…` (e.g. `ctl close_connection …`) and returns its stdout.
    @discardableResult
    static func services(_ arguments: String...) throws -> String {
        let output = NSTemporaryDirectory() + "warren-services-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try spawn(servicesScript, arguments, environment: ProcessInfo.processInfo.environment, output: output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw TestFailure("scripts/services \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
        return text
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

/// Starts a program with stdout and stderr going to `output`. posix_spawn rather than
/// Foundation's Process, whose waitUntilExit can hang on Linux; a file rather than a pipe,
/// so daemons the program starts hold nothing open that a test waits on.
func spawn(_ path: String, _ arguments: [String], environment: [String: String], output: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in argv + envp { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard result == 0 else { throw TestFailure("cannot run \(path): \(String(cString: strerror(result)))") }
    return pid
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

/// One line per fault-injection scenario in the test output, e.g. `fault broker blackholed
/// (both) then back: published=300 sent=300 lost=0 duplicated=0 dead-lettered=0`: what
/// `scripts/test` shows of each scenario's exact counts (the tests assert them too).
func reportFault(_ scenario: String, _ counts: KeyValuePairs<String, Int>) {
    print("fault \(scenario): " + counts.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
}
