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
            let events: [(line: Int, event: CloudEvent)]
            var broken = 0
            if ndjson {
                (events, broken) = readNDJSON()
            } else {
                events = [(1, try event(type: type!, dataText: data!, id: id, subject: subject))]
            }
            // Invalid events are named and skipped before connecting; the rest still go.
            var valid: [(line: Int, event: CloudEvent)] = []
            for entry in events {
                do {
                    try catalog.validate(entry.event)
                    valid.append(entry)
                } catch {
                    broken += 1
                    report(ndjson ? "line \(entry.line): \(entry.event.id): \(error)" : "\(error)")
                }
            }
            var configuration = try AMQPConfiguration(urls: options.amqpURL, connectionName: "warren publish")
            configuration.publishTimeout = .seconds(timeout)
            let connection = try await AMQPConnection.connect(configuration, logger: logger)
            let publisher = EventPublisher(
                channel: try await connection.openChannel(), catalog: nil,
                options: PublishOptions(
                    exchange: exchange, timeout: .seconds(timeout),
                    retry: RetryPolicy(maxAttempts: attempts, initialDelay: .milliseconds(200), backoff: .exponential(), maxDelay: .seconds(5)),
                    rateLimit: rate.map { RateLimiter(rate: $0, per: .seconds(1)) }))
            let results = await publisher.publish(valid.map(\.event), window: window)
            await connection.close()
            var confirmed = 0
            for (entry, result) in zip(valid, results) {
                switch result {
                case .success:
                    confirmed += 1
                    print(entry.event.id)
                case .failure(let error):
                    report("not confirmed: \(entry.event.id)\(ndjson ? " (line \(entry.line))" : ""): \(error)")
                }
            }
            let failed = broken + valid.count - confirmed
            if ndjson || failed > 0 {
                FileHandle.standardError.write(Data("published \(confirmed), failed \(failed)\n".utf8))
            }
            if failed > 0 { throw ExitCode.failure }
        }
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

    /// Events from stdin; a line that is no event is reported with its number and skipped.
    private func readNDJSON() -> ([(line: Int, event: CloudEvent)], broken: Int) {
        var events: [(Int, CloudEvent)] = []
        var broken = 0
        var number = 0
        while let line = readLine(strippingNewline: true) {
            number += 1
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            do {
                events.append((number, try CloudEvent(input: try JSONValue(parsing: Array(line.utf8)), defaultSource: source)))
            } catch let error as EventError {
                broken += 1
                report("line \(number): \(error)")
            } catch {
                broken += 1
                report("line \(number): not valid JSON")
            }
        }
        return (events, broken)
    }

    private func report(_ message: String) {
        FileHandle.standardError.write(Data("warren: \(message)\n".utf8))
    }
}
