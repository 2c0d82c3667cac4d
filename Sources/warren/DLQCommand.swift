import AMQP
import ArgumentParser
import Foundation
import Operations
import Postgres
import Topology
import WarrenCore

/// `warren dlq list|show|replay|purge`: inspect and act on dead-letter queues.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, replay and purge dead-letter queues.",
        discussion: """
            A browse is one pass over the queue: each message is taken with basic.get and put back at the tail (published with a confirm, then acked), so the queue keeps its messages and their order. Replay publishes each selected message with a confirm and only then acks it, so an interrupted replay loses nothing (rerun it). Every replay and purge is recorded in the warren_dlq_audit table.
            """,
        subcommands: [List.self, Show.self, Replay.self, Purge.self])
}

extension DLQCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dead-letter queues with their messages (all of the topology's, or one).")

        @OptionGroup var options: GlobalOptions

        @Argument(help: "A dead-letter queue, e.g. users.projection.dlq (default: every consumer's).")
        var queue: String?

        @Option(name: .customLong("file"), help: "The topology file. [env: WARREN_TOPOLOGY]")
        var topology: String = Topology.defaultPath

        @Flag(help: "Print JSON for scripts.")
        var json = false

        func run() async throws {
            // Printed while the pass runs: a reader that goes away (`| head`) must not kill
            // the pass between a put-back and its ack; it runs to the end, unread.
            signal(SIGPIPE, SIG_IGN)
            try await oneShot {
                let queues = try queue.map { [$0] } ?? Topology.load(path: topology).consumers.map(\.deadLetterQueueName)
                try await withDeadLetterQueues(options) { dlq in
                    if json { try await listJSON(dlq, queues) } else { try await listText(dlq, queues) }
                }
            }
        }

        /// `[{"queue", "declared", "messages": [...], "count"}, …]`, one message per line,
        /// written as the pass goes (nothing is held).
        private func listJSON(_ dlq: DeadLetterOperations, _ queues: [String]) async throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            func json(_ value: some Encodable) -> String { String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self) }
            var queuesWritten = 0, messagesWritten = 0
            // "[" comes with the first queue, so a queue that does not exist prints nothing
            // on stdout. An error later in the pass leaves the JSON incomplete (exit 1).
            try await dlq.list(queues, missingAllowed: queue == nil) { item in
                switch item {
                case .queue(let name, let count):
                    print((queuesWritten > 0 ? "," : "[\n") + #"{"queue":\#(json(name)),"declared":\#(count != nil),"messages":["#, terminator: "")
                    queuesWritten += 1
                    messagesWritten = 0
                    if count == nil { print(#"],"count":0}"#) }
                case .message(let message):
                    print((messagesWritten > 0 ? ",\n" : "\n") + json(message), terminator: "")
                    messagesWritten += 1
                case .end(_, let examined):
                    print((messagesWritten > 0 ? "\n" : "") + #"],"count":\#(examined)}"#)
                }
            }
            print(queuesWritten > 0 ? "]" : "[]")
        }

        /// Per queue a count line and a table, printed as the pass goes: the columns are
        /// sized from the first rows (`StreamingTable`), so memory stays constant.
        private func listText(_ dlq: DeadLetterOperations, _ queues: [String]) async throws {
            let now = Date()
            var table: StreamingTable?
            var expected = 0, listed = 0
            try await dlq.list(queues, missingAllowed: queue == nil) { item in
                switch item {
                case .queue(let name, let count):
                    if listed > 0 { print() }
                    listed += 1
                    guard let count else {
                        print("\(name): not declared on the broker (warren topology apply declares it)")
                        return
                    }
                    print("\(name): \(count) message\(count == 1 ? "" : "s")")
                    expected = count
                    table = StreamingTable(header: ["ID", "TYPE", "CONSUMER", "ERROR", "ATTEMPTS", "FIRST FAILED", "LAST FAILED", "AGE"])
                case .message(let message):
                    table?.add([
                        message.id, message.type ?? "-", message.consumer ?? "-",
                        clip([message.errorType, message.error].compactMap { $0 }.joined(separator: ": "), 60),
                        message.attempts.map(String.init) ?? "-", message.firstFailedAt.map(RFC3339.format) ?? "-",
                        message.lastFailedAt.map(RFC3339.format) ?? "-", message.age(now: now).map(ageText) ?? "-",
                    ])
                case .end(let name, let examined):
                    table?.finish()
                    table = nil
                    if examined != expected {
                        print("(\(examined) of \(expected) examined: \(name) changed during the listing)")
                    }
                }
            }
        }

        private func clip(_ text: String, _ length: Int) -> String {
            let line = text.replacingOccurrences(of: "\n", with: " ")
            return line.count <= length ? line : String(line.prefix(length - 1)) + "…"
        }

        private func ageText(_ seconds: TimeInterval) -> String {
            let whole = Int(seconds)
            return switch whole {
            case ..<60: "\(whole)s"
            case ..<3_600: "\(whole / 60)m"
            case ..<86_400: "\(whole / 3_600)h\(whole % 3_600 / 60)m"
            default: "\(whole / 86_400)d\(whole % 86_400 / 3_600)h"
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One dead-lettered message: properties, headers and body.")

        @OptionGroup var options: GlobalOptions

        @Argument(help: "The dead-letter queue.")
        var queue: String

        @Argument(help: "The message id.")
        var id: String

        func run() async throws {
            try await oneShot {
                try await withDeadLetterQueues(options) { dlq in
                    printMessage(try await dlq.show(queue, id: id))
                }
            }
        }

        private func printMessage(_ delivery: AMQPDelivery) {
            let properties = delivery.properties
            let fields: [(String, String?)] = [
                ("message_id", properties.messageID), ("type", properties.type), ("app_id", properties.appID),
                ("content_type", properties.contentType), ("correlation_id", properties.correlationID),
                ("timestamp", properties.timestamp.map { RFC3339.format(Date(timeIntervalSince1970: TimeInterval($0))) }),
                ("delivery_mode", properties.deliveryMode.map(String.init)),
            ]
            print("Properties:")
            for case let (name, value?) in fields { print("  \(name): \(value)") }
            print("Headers:")
            // The publish-sequence header is the AMQP module's bookkeeping, not the message's.
            for (name, value) in (properties.headers ?? [:]).sorted(by: { $0.key < $1.key }) where name != publishSequenceHeader {
                if case .invalidUTF8String(let bytes) = value {
                    print("  \(name): \(String(decoding: bytes, as: UTF8.self)) (not valid UTF-8: shown with replacements, kept as sent)")
                } else {
                    print("  \(name): \(value.stringValue ?? value.intValue.map(String.init) ?? "\(value)")")
                }
            }
            print("Body:")
            if let object = try? JSONSerialization.jsonObject(with: Data(delivery.body)),
               let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
                print(String(decoding: pretty, as: UTF8.self))
            } else {
                print(String(decoding: delivery.body, as: UTF8.self))
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Republish selected messages (with confirm, then ack) to where they came from or to a queue.",
            discussion: """
                Replayed messages get x-warren-replayed + 1 and x-warren-replayed-at; their attempt counter and per-failure headers (x-warren-attempts, -consumer, -error-type, -error, -last-failed-at) are removed; x-warren-first-failed-at and x-warren-original-* stay.
                """)

        @OptionGroup var options: GlobalOptions
        @OptionGroup var selection: SelectionOptions

        @Argument(help: "The dead-letter queue.")
        var queue: String

        @Option(name: .customLong("to-queue"), help: "Publish straight to this queue instead of the original exchange and routing key.")
        var toQueue: String?

        @Option(help: "At most this many messages per second.")
        var rate: Int?

        func validate() throws {
            try selection.check()
            if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        }

        func run() async throws {
            try await oneShot {
                try await settle(
                    queue, action: .replay(toQueue.map { .queue($0) } ?? .original), selection: selection, rate: rate, options: options)
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete selected messages from a dead-letter queue.")

        @OptionGroup var options: GlobalOptions
        @OptionGroup var selection: SelectionOptions

        @Argument(help: "The dead-letter queue.")
        var queue: String

        @Flag(help: "Do not ask for confirmation.")
        var yes = false

        func validate() throws { try selection.check() }

        func run() async throws {
            try await oneShot {
                if !yes && !selection.dryRun {
                    guard isatty(STDIN_FILENO) == 1 else {
                        throw ValidationError("refusing to purge without a terminal to confirm on; pass --yes")
                    }
                    let count = try await withDeadLetterQueues(options) { dlq in
                        try await dlq.queues.settle(queue, selector: selection.selector, action: .purge, dryRun: true).count
                    }
                    FileHandle.standardError.write(Data("Delete \(count) message\(count == 1 ? "" : "s") from \(queue)? [y/N] ".utf8))
                    guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                        FileHandle.standardError.write(Data("warren: purge cancelled\n".utf8))
                        throw ExitCode.failure
                    }
                }
                try await settle(queue, action: .purge, selection: selection, rate: nil, options: options)
            }
        }
    }

    /// The selectors replay and purge share.
    struct SelectionOptions: ParsableArguments {
        @Option(name: .customLong("id"), help: "A message id (repeatable).")
        var ids: [String] = []

        @Option(help: "Only messages of this event type.")
        var type: String?

        @Option(help: "Only messages whose x-warren-error contains this text.")
        var error: String?

        @Option(name: .customLong("older-than"), help: "Only messages dead-lettered longer ago than this (30s, 10m, 2h, 3d).")
        var olderThan: String?

        @Option(name: .customLong("newer-than"), help: "Only messages dead-lettered more recently than this.")
        var newerThan: String?

        @Option(help: "At most this many messages.")
        var limit: Int?

        @Flag(help: "Every message (required when no other selector is given).")
        var all = false

        @Flag(name: .customLong("dry-run"), help: "Only list what would be done.")
        var dryRun = false

        @Option(help: "Who is doing this, for the audit table. [default: $USER or $LOGNAME]")
        var actor: String = ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"

        @Flag(help: "Print JSON for scripts.")
        var json = false

        func check() throws {
            guard all || !ids.isEmpty || type != nil || error != nil || olderThan != nil || newerThan != nil else {
                throw ValidationError("select messages with --id, --type, --error, --older-than or --newer-than, or pass --all")
            }
            for text in [olderThan, newerThan].compactMap({ $0 }) where AgeText.parse(text) == nil {
                throw ValidationError("'\(text)' is not a duration like 30s, 10m, 2h or 3d")
            }
            if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
        }

        var selector: DeadLetterSelector {
            var selector = DeadLetterSelector()
            selector.ids = ids
            selector.type = type
            selector.errorContains = error
            selector.olderThan = olderThan.flatMap(AgeText.parse)
            selector.newerThan = newerThan.flatMap(AgeText.parse)
            selector.limit = limit
            selector.all = all
            return selector
        }
    }
}

/// Replay or purge, audited (unless a dry run), printing what was (or would be) touched.
private func settle(
    _ queue: String, action: DeadLetterQueues.Action, selection: DLQCommand.SelectionOptions, rate: Int?, options: GlobalOptions
) async throws {
    let request = DeadLetterOperations.Request(
        queue: queue, action: action, selector: selection.selector, actor: selection.actor, dryRun: selection.dryRun, rate: rate)
    let messages: [DeadLetterMessage]
    let reporter = ProgressReporter(verb: action.auditName, json: selection.json)
    do {
        messages = try await withDatabase(options, label: "warren.dlq") { database in
            try await withDeadLetterQueues(options) { dlq in
                try await dlq.settle(request, auditIn: database, progress: reporter.report)
            }
        }
    } catch {
        reporter.finish()
        throw error
    }
    reporter.finish()
    if selection.json {
        printJSON(messages)
    } else {
        let verb = selection.dryRun ? "would \(action.auditName)" : (action.auditName == "replay" ? "replayed" : "purged")
        for message in messages { print("\(message.id)\t\(message.type ?? "-")") }
        print("\(verb) \(messages.count) message\(messages.count == 1 ? "" : "s") from \(queue)")
    }
}

/// Connects to the broker for one command and closes the connection afterwards.
private func withDeadLetterQueues<T>(_ options: GlobalOptions, _ body: (DeadLetterOperations) async throws -> T) async throws -> T {
    var logger = options.logger("warren.dlq", oneShot: true)
    // A missing queue closes the channel with a 404 that the AMQP module logs as a
    // warning; the command reports it as its one line, so only errors are logged.
    if !options.verbose { logger.logLevel = .error }
    return try await AMQPConnection.withConnection(try AMQPConfiguration(urls: options.amqpURL, connectionName: "warren dlq"), logger: logger) {
        try await body(DeadLetterOperations(queues: DeadLetterQueues(connection: $0, logger: logger)))
    }
}

private func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self))
}

/// Progress of a replay or purge on stderr: a line rewritten in place on a terminal (at
/// most ten times a second), or with `--json` one JSON object per second
/// (`{"examined", "total", "selected"}`), the last when it ends. Nothing otherwise, so
/// scripts reading stdout see only the result.
final class ProgressReporter {
    private let verb: String
    private let json: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private var last: DeadLetterProgress?
    private var shownAt = ContinuousClock.now - .seconds(10)
    private var shown = false

    init(verb: String, json: Bool) {
        self.verb = verb
        self.json = json
    }

    func report(_ progress: DeadLetterProgress) {
        last = progress
        let interval: Duration = json ? .seconds(1) : .milliseconds(100)
        guard json || terminal, ContinuousClock.now - shownAt >= interval else { return }
        show(progress)
    }

    func finish() {
        if let last, json || terminal { show(last) }
        if shown && !json { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func show(_ progress: DeadLetterProgress) {
        shownAt = .now
        shown = true
        let line =
            json
            ? #"{"examined":\#(progress.examined),"total":\#(progress.total),"selected":\#(progress.selected)}"# + "\n"
            : "\r\(verb): \(progress.examined)/\(progress.total) examined, \(progress.selected) selected"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
