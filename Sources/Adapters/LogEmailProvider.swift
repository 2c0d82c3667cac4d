import Foundation
import Logging
import WarrenCore

/// The local default when no `SENDGRID_API_KEY` is configured: accepts every email,
/// logs it and hands it to `record` (the CLI stores it in the `email_log` table), so
/// that development shows what would have been sent.
public struct LogEmailProvider: EmailProvider {
    /// Stores a would-be email under its message id.
    public typealias Recorder = @Sendable (_ messageID: String, _ email: Email) async throws -> Void

    public let name = "log"
    private let logger: Logger
    private let record: Recorder?

    public init(logger: Logger, record: Recorder? = nil) {
        self.logger = logger
        self.record = record
    }

    public func send(_ email: Email) async throws -> String? {
        let id = "log-" + UUID().uuidString.lowercased()
        try await record?(id, email)
        var metadata: Logger.Metadata = ["email.message_id": "\(id)", "email.to_domain": "\(email.to.email.split(separator: "@").last ?? "")"]
        switch email.content {
        case .text(let subject, _): metadata["email.subject"] = "\(subject)"
        case .template(let template, _): metadata["email.template_id"] = "\(template)"
        }
        // The address stays out of the log (personal data); the table has the whole email.
        logger.info("email.logged", metadata: metadata)
        return id
    }
}
