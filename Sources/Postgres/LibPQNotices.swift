import CLibPQ
import Logging

/// Routes the server's NOTICE/WARNING messages to the connection's logger instead of libpq's
/// default, which prints them on stderr. libpq keeps an unretained pointer to it, so the
/// connection keeps it alive until after `PQfinish`.
final class LibPQNotices: Sendable {
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func install(on pgconn: OpaquePointer) {
        PQsetNoticeReceiver(pgconn, { context, result in
            guard let context, let result else { return }
            Unmanaged<LibPQNotices>.fromOpaque(context).takeUnretainedValue().log(result)
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    private func log(_ result: OpaquePointer) {
        func field(_ name: Character) -> String {
            PQresultErrorField(result, Int32(name.asciiValue!)).map { String(cString: $0) } ?? ""
        }
        let severity = field("V")
        let level: Logger.Level = severity == "WARNING" ? .warning : .debug
        logger.log(
            level: level,
            "postgres notice",
            metadata: [
                "postgres.severity": "\(severity)",
                "postgres.sqlstate": "\(field("C"))",
                "postgres.message": "\(field("M"))",
            ]
        )
    }
}
