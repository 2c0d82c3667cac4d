import Foundation
import Logging
import Observability
import Locking

/// The CLI is the only place that bootstraps logging (libraries just take a `Logger`).
enum LoggingBootstrap {
    private static let done = Mutex(false)

    static func once(format: GlobalOptions.LogFormat, level: Logger.Level) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        // Every line written while a request or message is handled carries its trace_id.
        LoggingSystem.bootstrap(
            { label, provider in
                var handler: any LogHandler =
                    format == .json
                    ? JSONLogHandler(label: label, metadataProvider: provider)
                    : TextLogHandler(label: label, metadataProvider: provider)
                handler.logLevel = level
                return handler
            }, metadataProvider: .traceContext)
    }
}

/// swift-log's `StreamLogHandler` on stderr, the same lines, but metadata is only
/// formatted when a line is written: `StreamLogHandler` formats it again whenever a key
/// is set, and the HTTP server sets one per request (Hummingbird's `hb.request.id`)
/// that is almost never logged.
struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String, metadataProvider: Logger.MetadataProvider?) {
        stream = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
    }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var stream = self.stream
        stream.metadata = metadata
        stream.log(event: event)
    }
}

/// One JSON object per line on stderr, for log shippers (`--log-format json`).
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = [
            "time": Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
            "level": event.level.rawValue, "logger": label, "message": event.message.description,
        ]
        let provided = metadataProvider?.get() ?? [:]
        for (key, value) in provided.merging(metadata, uniquingKeysWith: { $1 }).merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = value.description
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }
}
