import ArgumentParser
import Foundation

/// `warren services …` hands over to the project's `scripts/services`, which installs,
/// starts and stops the local RabbitMQ and PostgreSQL.
struct Services: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Start, stop or check the local RabbitMQ and PostgreSQL (scripts/services).")

    @Argument(parsing: .captureForPassthrough, help: "start | stop | status | restart [rabbitmq|postgres] | cluster start|stop|status|wipe|kill N|restart N")
    var arguments: [String] = ["status"]

    func run() async throws {
        try await oneShot {
            let script = Environment.value("WARREN_SERVICES_SCRIPT", default: "scripts/services")
            guard FileManager.default.isExecutableFile(atPath: script) else {
                throw ValidationError("\(script) not found: run warren from the repository root or set WARREN_SERVICES_SCRIPT")
            }
            // Replaces this process: the script's output and exit code are the command's.
            let argv = ([script] + arguments).map { strdup($0) } + [nil]
            execv(script, argv)
            throw ValidationError("cannot run \(script): \(String(cString: strerror(errno)))")
        }
    }
}
