import ArgumentParser
import Foundation
import Glibc

/// `warren bench …`: a thin entry to `warren-bench` (the benchmark's own executable, built
/// beside `warren`), which it replaces with every argument as given.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure AMQP throughput: runs warren-bench, installed next to warren (the Swift side of Benchmarks/run)."
    )

    @Argument(parsing: .captureForPassthrough, help: "publish|consume|consume-pg and their options (see warren-bench --help).")
    var arguments: [String] = []

    func run() throws {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("warren-bench").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationError("no warren-bench next to warren (\(path)); build it: swift build -c release --product warren-bench")
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        throw ValidationError("cannot run \(path): \(String(cString: strerror(errno)))")
    }
}
