import AMQP
import ArgumentParser
import Foundation
import Logging
import Synchronization

/// `warren bench`: the Swift half of `Benchmarks/run`. Each subcommand does exactly what
/// `Benchmarks/amqp_baseline.c` does with the same flags, so the two can be compared; the
/// queue must already exist (the runner declares it). Connection setup is not timed.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure AMQP throughput (the Swift side of Benchmarks/run).",
        subcommands: [Publish.self, Consume.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "Broker URL (default: WARREN_AMQP_URL or the local broker).")
        var url = ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f"

        @Option(help: "An existing queue.")
        var queue: String

        @Option(help: "How many messages.")
        var count = 50_000

        func connect() async throws -> AMQPConnection {
            var logger = Logger(label: "warren.bench")
            logger.logLevel = .warning
            return try await AMQPConnection.connect(AMQPConfiguration(urls: url, connectionName: "warren-bench"), logger: logger)
        }

        func validate() throws {
            guard count > 0 else { throw ValidationError("--count must be positive") }
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Persistent publishes to the default exchange, each awaiting its confirm, with up to --window in flight."
        )

        @OptionGroup var connection: Connection

        @Option(help: "How many publishes may await their confirm at once.")
        var window = 256

        @Option(help: "Body size in bytes.")
        var size = 256

        func validate() throws {
            guard window > 0 else { throw ValidationError("--window must be positive") }
            guard size >= 0 else { throw ValidationError("--size must not be negative") }
        }

        func run() async throws {
            let amqp = try await connection.connect()
            let channel = try await amqp.openChannel(confirms: true)
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
            let properties = AMQPProperties(deliveryMode: AMQPProperties.persistentDeliveryMode)
            let queue = connection.queue
            let count = connection.count
            // A sliding window: `window` workers, each publishing and awaiting the confirm
            // before taking the next message number, keep exactly `window` unconfirmed.
            let claimed = Counter()
            let started = Start()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<min(window, count) {
                    group.addTask {
                        while claimed.next() < count {
                            try await channel.publish(body, exchange: "", routingKey: queue, properties: properties)
                        }
                    }
                }
                try await group.waitForAll()
            }
            Bench.report(count: count, since: started)
            await amqp.close()
        }
    }

    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume --count messages with --prefetch, acking each one singly."
        )

        @OptionGroup var connection: Connection

        @Option(help: "basic.qos prefetch count.")
        var prefetch: UInt16 = 256

        func run() async throws {
            let amqp = try await connection.connect()
            let channel = try await amqp.openChannel(confirms: false)
            try await channel.setPrefetch(prefetch)
            let count = connection.count
            let started = Start()
            let consumer = try await channel.consume(queue: connection.queue)
            var received = 0
            for try await delivery in consumer {
                try channel.ack(delivery)
                received += 1
                if received == count { break }
            }
            guard received == count else {
                throw ValidationError("the consumer ended after \(received) of \(count) messages")
            }
            Bench.report(count: count, since: started)
            await amqp.close()
        }
    }

    /// Where the timed part of a run starts: wall clock and this process's CPU time.
    struct Start {
        let wall = ContinuousClock.now
        let cpu = Bench.processCPUSeconds()
    }

    /// The one line `Benchmarks/run` parses, identical to the C baseline's: throughput,
    /// and the CPU (all threads, user + system) each message cost this process.
    static func report(count: Int, since start: Start) {
        let elapsed = ContinuousClock.now - start.wall
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = processCPUSeconds() - start.cpu
        print(String(format: "msgs_per_sec=%.1f cpu_us_per_msg=%.2f", Double(count) / seconds, cpu * 1e6 / Double(count)))
    }

    fileprivate static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Hands out message numbers to the publishing workers.
    final class Counter: Sendable {
        private let value = Atomic<Int>(0)

        func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
    }
}
