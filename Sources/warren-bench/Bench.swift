import AMQP
import ArgumentParser
import Consumers
import Foundation
import Handlers
import Logging
import Observability
import Postgres
import ServiceLifecycle
import Locking
import WarrenCore

/// `warren-bench`: the Swift half of `Benchmarks/run`. Each subcommand does exactly what
/// `Benchmarks/amqp_baseline.c` does with the same flags, so the two can be compared; the
/// queue must already exist (the runner declares it). Connection setup is not timed.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren-bench",
        abstract: "Measure AMQP throughput (the Swift side of Benchmarks/run).",
        subcommands: [Publish.self, Consume.self, ConsumePostgres.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "Broker URL (default: WARREN_AMQP_URL or the local broker).")
        var url = ProcessInfo.processInfo.environment["WARREN_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f"

        @Option(help: "An existing queue.")
        var queue: String

        @Option(help: "How many messages.")
        var count = 50_000

        func connect() async throws -> AMQPConnection {
            // Measured as a long-running command runs: with the metrics backend recording.
            WarrenMetrics.bootstrap()
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
            // A sliding window, as the C program keeps one: send until `window` await
            // their confirms, then await the oldest before sending the next.
            var inFlight: [PublishConfirmation?] = Array(repeating: nil, count: window)
            let started = Start()
            for number in 0..<count {
                if let oldest = inFlight[number % window] { try await oldest.confirmed() }
                inFlight[number % window] = channel.send(body, exchange: "", routingKey: queue, properties: properties)
            }
            for case let confirmation? in inFlight { try await confirmation.confirmed() }
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

    /// The real consumer runtime with `users.projection`, against the real database, doing
    /// what `Benchmarks/consume_pg_baseline.c consume` does: the queue holds (or is being
    /// fed) `user.created` events from that program's publisher, whose event ids end in
    /// their publish time in µs (CLOCK_REALTIME). An event counts when the runtime reports
    /// it processed, which it does after the commit and before the ack; publish → that
    /// moment is its latency.
    struct ConsumePostgres: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "consume-pg",
            abstract: "Run users.projection on --queue until --count events are committed."
        )

        @OptionGroup var connection: Connection

        @Option(help: "The consumer name the inbox records (one per run keeps runs apart).")
        var consumer: String

        @Option(help: "basic.qos prefetch count.")
        var prefetch: UInt16 = 256

        @Option(help: "Deliveries per transaction.")
        var batch = 100

        @Option(name: .customLong("batch-wait"), help: "Milliseconds an idle consumer lingers for a fuller batch (topology batch_wait).")
        var batchWait = 0

        @Option(name: .customLong("database-url"), help: "PostgreSQL URI (default: WARREN_DATABASE_URL or the local database).")
        var databaseURL = ProcessInfo.processInfo.environment["WARREN_DATABASE_URL"] ?? "postgresql://warren:warren@127.0.0.1:5432/warren"

        @Option(help: "Directory of event schemas.")
        var catalog = EventCatalog.defaultDirectory

        func validate() throws {
            guard batch > 0, batchWait >= 0 else { throw ValidationError("--batch must be positive, --batch-wait not negative") }
        }

        func run() async throws {
            var quiet = Logger(label: "warren.bench")
            quiet.logLevel = .warning
            let amqp = try await connection.connect()
            let database = PostgresPool(conninfo: databaseURL, maxConnections: 1, logger: quiet)
            try await database.withConnection { _ in }  // connected before the clock starts, as in C
            let progress = Progress(count: connection.count)
            let settings = ConsumerSettings(
                name: consumer, queue: connection.queue, retryQueues: [], deadLetterQueue: connection.queue + ".dlq",
                maxAttempts: 1, prefetch: prefetch, batchSize: batch, batchWait: .milliseconds(batchWait))
            let runtime = ConsumerRuntime(
                settings: settings, module: UsersProjection(), amqp: amqp, database: database,
                catalog: try EventCatalog(directory: catalog), logger: quiet,
                observer: { event in
                    switch event {
                    case .committed(let applied, let duplicates):
                        if let duplicate = duplicates.first { progress.failed("duplicate event \(duplicate)") }
                        progress.committed(applied)
                    case .failed(let id, _, _, let failure):
                        progress.failed("event \(id ?? "-") failed: \(failure)")
                    case .republishFailed(let id, let error):
                        progress.failed("event \(id ?? "-") could not be republished: \(error)")
                    }
                })
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [runtime], logger: quiet))
            let started = Start()
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                do {
                    try await progress.finished()
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let (end, latencies) = progress.result()
            let elapsed = end - started.wall
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let cpu = processCPUSeconds() - started.cpu
            let count = connection.count
            print(String(
                format: "msgs_per_sec=%.1f cpu_us_per_msg=%.2f p50_ms=%.2f p99_ms=%.2f", Double(count) / seconds,
                cpu * 1e6 / Double(count), Double(latencies[count / 2]) / 1000, Double(latencies[count * 99 / 100]) / 1000))
            await database.close()
            await amqp.close()
        }
    }

    /// Counts committed events and their latencies, and wakes the command after the last.
    final class Progress: Sendable {
        private struct State {
            var latencies: [Int64] = []
            var end: ContinuousClock.Instant?
            var failure: String?
            var waiter: CheckedContinuation<Void, any Error>?
        }

        private let count: Int
        private let state = Mutex(State())

        init(count: Int) {
            self.count = count
            state.withLock { $0.latencies.reserveCapacity(count) }
        }

        /// Event ids end in their publish time (µs since the epoch, `CLOCK_REALTIME`).
        func committed(_ ids: [String]) {
            let now = realtimeMicroseconds()
            let latencies = ids.map { id in now - Self.trailingNumber(id) }
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                state.latencies += latencies
                guard state.latencies.count >= count, state.end == nil else { return nil }
                state.end = .now
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }

        /// The digits after the last `-` (as the C side reads them: no string splitting).
        private static func trailingNumber(_ id: String) -> Int64 {
            var value: Int64 = 0, scale: Int64 = 1
            for byte in id.utf8.reversed() {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
                value += Int64(byte - UInt8(ascii: "0")) * scale
                scale *= 10
            }
            return value
        }

        /// Anything but a clean commit means the numbers would not compare: stop.
        func failed(_ reason: String) {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                if state.failure == nil { state.failure = reason }
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: ValidationError(reason))
        }

        func finished() async throws {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if let failure = state.failure { return .failure(ValidationError(failure)) }
                    if state.end != nil { return .success(()) }
                    state.waiter = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        }

        /// When the last event committed, and the sorted latencies in µs.
        func result() -> (ContinuousClock.Instant, [Int64]) {
            state.withLock { ($0.end!, $0.latencies.sorted()) }
        }

        private func realtimeMicroseconds() -> Int64 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
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
}
