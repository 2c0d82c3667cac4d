import AMQP
import ArgumentParser
import Foundation
import Messaging
import WarrenCore

/// `warren publish`: one event from flags, or many as NDJSON on stdin.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish events to the exchange and wait for the broker's confirms.",
        discussion: """
            One event:  warren publish user.created --data '{"id":"u1","name":"Ada","email":"ada@example.com"}'
            Many:       warren publish --ndjson < events.ndjson
            Each NDJSON line is a CloudEvent or {"type": …, "data": …} (optional id, source, subject).
            Prints each confirmed id on stdout; exits 1 naming every event that was not confirmed.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The event type (= routing key), e.g. user.created.")
    var type: String?

    @Option(help: "The event's data as JSON.")
    var data: String?

    @Option(help: "CloudEvents source of the events.")
    var source: String = "/warren/cli"

    @Option(help: "CloudEvents subject.")
    var subject: String?

    @Option(help: "The event id (default: a new UUID).")
    var id: String?

    @Flag(help: "Read events from stdin, one JSON object per line.")
    var ndjson = false

    @Option(help: "Seconds to wait for each confirm.")
    var timeout: Double = 10

    @Option(help: "Events awaiting confirms at once (--ndjson).")
    var window: Int = 256

    @Option(help: "Attempts per event for transient failures (lost connection, timeout, nack).")
    var attempts: Int = 1

    @Option(help: "At most this many events per second.")
    var rate: Int?

    @Option(help: "Directory of event schemas. [env: WARREN_CATALOG]")
    var catalog: String = Environment.value(EventCatalog.environmentVariable, default: EventCatalog.defaultDirectory)

    @Option(help: "The exchange to publish to.")
    var exchange: String = "events"

    func validate() throws {
        if ndjson {
            guard type == nil, data == nil else { throw ValidationError("--ndjson reads events from stdin: give no TYPE or --data") }
        } else {
            guard type != nil, data != nil else { throw ValidationError("give TYPE and --data, or --ndjson") }
        }
        guard timeout > 0, window > 0, attempts > 0 else { throw ValidationError("--timeout, --window and --attempts must be positive") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
    }

    func run() async throws {
        try await oneShot {
            let logger = options.logger("warren.publish", oneShot: true)
            let catalog = try EventCatalog(directory: catalog)
            var single: CloudEvent?
            if !ndjson {
                // A bad single event is refused before connecting.
                let event = try event(type: type!, dataText: data!, id: id, subject: subject)
                try catalog.validate(event)
                single = event
            }
            var configuration = try AMQPConfiguration(urls: options.amqpURL, connectionName: "warren publish")
            configuration.publishTimeout = .seconds(timeout)
            let tally = try await AMQPConnection.withConnection(configuration, logger: logger) { connection in
                let publisher = EventPublisher(
                    channel: try await connection.openChannel(), catalog: nil,
                    options: PublishOptions(
                        exchange: exchange, timeout: .seconds(timeout),
                        retry: RetryPolicy(maxAttempts: attempts, initialDelay: .milliseconds(200), backoff: .exponential(), maxDelay: .seconds(5)),
                        rateLimit: rate.map { RateLimiter(rate: $0, per: .seconds(1)) }))
                var tally = Tally()
                if let single {
                    await publish([(1, single)], with: publisher, into: &tally)
                } else {
                    // Streamed: `window` events are read, published and confirmed at a time, so
                    // memory stays bounded and the first are confirmed before stdin ends.
                    var reader = LineReader(fileDescriptor: 0, maxLineBytes: Self.maxLineBytes)
                    var batch: [(line: Int, event: CloudEvent)] = []
                    while let (number, line) = reader.next() {
                        if let event = parse(number, line, catalog: catalog, tally: &tally) { batch.append((number, event)) }
                        if batch.count == window {
                            await publish(batch, with: publisher, into: &tally)
                            batch.removeAll(keepingCapacity: true)
                        }
                    }
                    await publish(batch, with: publisher, into: &tally)
                    if let failure = reader.failure {
                        tally.failed += 1
                        report("reading stdin failed after line \(reader.lineCount): \(String(cString: strerror(failure)))")
                    }
                }
                return tally
            }
            if ndjson || tally.failed > 0 {
                FileHandle.standardError.write(Data("published \(tally.confirmed), failed \(tally.failed)\n".utf8))
            }
            if tally.failed > 0 { throw ExitCode.failure }
        }
    }

    /// A line longer than this is reported and skipped without being held.
    static let maxLineBytes = 1 << 20

    private struct Tally {
        var confirmed = 0
        var failed = 0
    }

    /// One NDJSON line as an event valid for the catalog, or nil (reported and counted).
    private func parse(_ number: Int, _ line: LineReader.Line, catalog: EventCatalog, tally: inout Tally) -> CloudEvent? {
        let bytes: [UInt8]
        switch line {
        case .tooLong(let length):
            tally.failed += 1
            report("line \(number): \(length) bytes, longer than \(Self.maxLineBytes)")
            return nil
        case .bytes(let content): bytes = content
        }
        guard bytes.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { return nil }
        do {
            // The line's own bytes: invalid UTF-8 is an error, never silently repaired.
            let event = try CloudEvent(input: try JSONValue(parsing: bytes), defaultSource: source)
            do {
                try catalog.validate(event)
                return event
            } catch {
                tally.failed += 1
                report("line \(number): \(event.id): \(error)")
            }
        } catch let error as EventError {
            tally.failed += 1
            report("line \(number): \(error)")
        } catch let error as JSONValue.ParseError {
            tally.failed += 1
            report("line \(number): not valid JSON (\(error))")
        } catch {
            tally.failed += 1
            report("line \(number): \(error)")
        }
        return nil
    }

    /// Publishes, then prints each confirmed id on stdout and names each failure.
    private func publish(_ entries: [(line: Int, event: CloudEvent)], with publisher: EventPublisher, into tally: inout Tally) async {
        guard !entries.isEmpty else { return }
        let results = await publisher.publish(entries.map(\.event), window: window)
        for (entry, result) in zip(entries, results) {
            switch result {
            case .success:
                tally.confirmed += 1
                print(entry.event.id)
            case .failure(let error):
                tally.failed += 1
                report("not confirmed: \(entry.event.id)\(ndjson ? " (line \(entry.line))" : ""): \(error)")
            }
        }
        fflush(nil)  // the ids so far, for a reader of the pipe
    }

    private func event(type: String, dataText: String, id: String?, subject: String?) throws -> CloudEvent {
        let data: JSONValue
        do {
            data = try JSONValue(parsing: Array(dataText.utf8))
        } catch {
            throw ValidationError("--data is not valid JSON")
        }
        return CloudEvent(type: type, source: source, data: data, id: id ?? UUID().uuidString.lowercased(), subject: subject)
    }

    private func report(_ message: String) {
        FileHandle.standardError.write(Data("warren: \(message)\n".utf8))
    }
}
