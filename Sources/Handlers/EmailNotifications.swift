import Adapters
import Consumers
import Foundation
import Logging
import Postgres
import WarrenCore

/// `email.notifications`: a welcome email on `user.created`, a receipt on
/// `payment.succeeded`, a notice on `payment.failed`.
///
/// SendGrid has no idempotency key, so each email is guarded by its row in `email_sends`
/// (event id, kind), written in its own short statements and never inside a transaction
/// held across the call:
/// 1. before the call, the intent (`state = 'sending'`);
/// 2. after a 2xx, `sent` with SendGrid's message id: a redelivered event finds it and
///    sends nothing;
/// 3. after an answer that is not a 2xx, or a connection that could not be made (nothing
///    was sent), the intent is deleted and the failure retried or dead-lettered as usual;
/// 4. after a timeout or a connection dropped once the request was out, `unknown`: the
///    email may have been sent, so the event is dead-lettered with `x-warren-error-type:
///    outcome-unknown` for ops to decide. An intent found on a redelivery (a crash during
///    the call) is treated the same way. Replaying the message from the DLQ is the
///    decision to send it again: a delivery replayed more often than when the intent was
///    written sends anew.
///
/// Payments name a user; an address not yet in `users` (the projection may lag) is a
/// transient failure, a deleted user gets no email.
public struct EmailNotifications: CallingModule {
    public let name = "email.notifications"

    /// Sender and templates. A template id (SendGrid dynamic template `d-…`) replaces the
    /// built-in plain-text email of its kind and receives the event's fields as data.
    public struct Settings: Sendable {
        public var from: EmailAddress
        public var templates: [Kind: String]

        public init(from: EmailAddress, templates: [Kind: String] = [:]) {
            self.from = from
            self.templates = templates
        }

        /// `WARREN_EMAIL_FROM` (`address` or `Name <address>`, default
        /// `Warren <no-reply@localhost>`), `WARREN_TEMPLATE_WELCOME`,
        /// `WARREN_TEMPLATE_RECEIPT`, `WARREN_TEMPLATE_PAYMENT_FAILED`.
        public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
            self.init(from: Self.address(environment["WARREN_EMAIL_FROM"] ?? "Warren <no-reply@localhost>"))
            for kind in Kind.allCases {
                if let id = environment["WARREN_TEMPLATE_\(kind.rawValue.uppercased())"], !id.isEmpty { templates[kind] = id }
            }
        }

        static func address(_ text: String) -> EmailAddress {
            guard let open = text.lastIndex(of: "<"), text.hasSuffix(">") else { return EmailAddress(text.trimmingCharacters(in: .whitespaces)) }
            let name = text[..<open].trimmingCharacters(in: .whitespaces)
            return EmailAddress(String(text[text.index(after: open)..<text.index(before: text.endIndex)]), name: name.isEmpty ? nil : name)
        }
    }

    public enum Kind: String, Sendable, CaseIterable {
        case welcome, receipt
        case paymentFailed = "payment_failed"

        init?(eventType: String) {
            switch eventType {
            case "user.created": self = .welcome
            case "payment.succeeded": self = .receipt
            case "payment.failed": self = .paymentFailed
            default: return nil
            }
        }
    }

    let provider: any EmailProvider
    let settings: Settings
    let logger: Logger

    public init(provider: any EmailProvider, settings: Settings, logger: Logger) {
        self.provider = provider
        self.settings = settings
        self.logger = logger
    }

    public func handle(_ event: CloudEvent, delivery: DeliveryInfo, database: PostgresPool) async throws -> HandlerFailure? {
        try await event.inTrace("email.notifications \(event.type)") { try await send(event, delivery, database) }
    }

    /// One event's email, in the event's trace: nil when sent (or not needed), else why not.
    private func send(_ event: CloudEvent, _ delivery: DeliveryInfo, _ database: PostgresPool) async throws -> HandlerFailure? {
        guard let kind = Kind(eventType: event.type) else {
            return .permanent("event.unhandled", "email.notifications does not handle \(event.type)")
        }
        let userID = event.data?[kind == .welcome ? "id" : "user_id"]?.stringValue
        let recipient: EmailAddress
        switch try await self.recipient(of: event, userID: userID, in: database) {
        case .found(let address): recipient = address
        case .deleted:
            logger.notice("email.skipped", metadata: ["message_id": "\(event.id)", "reason": "user deleted"])
            return nil
        case .failed(let failure):
            return failure
        }
        let sends = EmailSends(database: database, eventID: event.id, kind: kind, replayed: delivery.replayed)
        switch try await sends.claim(provider: provider.name, userID: userID) {
        case .claimed: break
        case .sent: return nil
        case .released: return .transient("email.intent_released", "a concurrent attempt at the \(kind.rawValue) email just gave up; trying again")
        case .unresolved(let state):
            return .permanent(
                Self.outcomeUnknown,
                "outcome-unknown: an earlier attempt at the \(kind.rawValue) email \(state == "unknown" ? "got no answer" : "was cut off"); it may have been sent. Replay the message to send it again.")
        }
        let messageID: String?
        do {
            messageID = try await provider.send(Email(to: recipient, from: settings.from, content: content(kind, event, recipient)))
        } catch let error as ProviderError where error.kind == .outcomeUnknown {
            try await Self.recordRetry.run { try await sends.markUnknown() }
            logger.error("email.outcome_unknown", metadata: ["message_id": "\(event.id)", "email.kind": "\(kind.rawValue)", "error": "\(error)"])
            return .permanent(Self.outcomeUnknown, "outcome-unknown: \(error.description). It is not sent again; replay the message to send it.")
        } catch let error as ProviderError {
            // Answered, or never sent: nothing went out, the next attempt may send.
            try await Self.recordRetry.run { try await sends.release() }
            return HandlerFailure(error)
        }
        // The email is out: without this record a redelivery finds the intent and
        // dead-letters the event as outcome-unknown (and a replay would send it again), so
        // a failing database gets minutes of tries before the batch fails.
        try await Self.sentRecordRetry.run { try await sends.markSent(provider: provider.name, userID: userID, messageID: messageID) }
        logger.info("email.sent", metadata: ["message_id": "\(event.id)", "email.kind": "\(kind.rawValue)", "email.provider_message_id": "\(messageID ?? "-")"])
        return nil
    }

    /// `x-warren-error-type` of an email that may or may not have been sent.
    public static let outcomeUnknown = "outcome-unknown"

    private static let recordRetry = RetryPolicy(maxAttempts: 4, initialDelay: .milliseconds(200), maxDelay: .seconds(2))
    /// About five minutes.
    private static let sentRecordRetry = RetryPolicy(maxAttempts: 64, initialDelay: .milliseconds(200), maxDelay: .seconds(5))

    private enum Recipient {
        case found(EmailAddress)
        case deleted
        case failed(HandlerFailure)
    }

    private func recipient(of event: CloudEvent, userID: String?, in database: PostgresPool) async throws -> Recipient {
        if event.type == "user.created" {
            guard let email = event.data?["email"]?.stringValue else { return .failed(.permanent("email.invalid", "data.email is missing")) }
            return .found(EmailAddress(email, name: event.data?["name"]?.stringValue))
        }
        guard let userID else { return .failed(.permanent("email.invalid", "data.user_id is missing")) }
        let rows = try await database.withConnection { connection in
            try await connection.query("SELECT email, name, deleted_at IS NOT NULL AS deleted FROM users WHERE id = \(userID)")
        }
        guard let row = rows.first, let email = try row.decode(String?.self, "email") else {
            // The users projection may not have seen the user yet: try again later.
            return .failed(.transient("email.recipient_unknown", "no email address for user \(userID) yet"))
        }
        if try row.decode(Bool.self, "deleted") { return .deleted }
        return .found(EmailAddress(email, name: try row.decode(String?.self, "name")))
    }

    private func content(_ kind: Kind, _ event: CloudEvent, _ recipient: EmailAddress) -> Email.Content {
        let data = event.data?.objectValue ?? [:]
        if let template = settings.templates[kind] {
            var fields = data
            if let name = recipient.name { fields["name"] = .string(name) }
            if let amount = data["amount"]?.intValue, let currency = data["currency"]?.stringValue {
                fields["amount_formatted"] = .string(Self.format(amount, currency))
            }
            return .template(id: template, data: fields)
        }
        let greeting = "Hello \(recipient.name ?? "there"),"
        let payment = data["payment_id"]?.stringValue ?? "-"
        let amount = data["amount"]?.intValue.flatMap { amount in data["currency"]?.stringValue.map { Self.format(amount, $0) } } ?? "-"
        switch kind {
        case .welcome:
            return .text(subject: "Welcome", body: "\(greeting)\n\nyour account has been created.\n")
        case .receipt:
            return .text(subject: "Payment receipt", body: "\(greeting)\n\nwe received your payment of \(amount) (reference \(payment)).\n")
        case .paymentFailed:
            let reason = data["failure_message"]?.stringValue ?? data["failure_code"]?.stringValue ?? "unknown"
            return .text(
                subject: "Your payment failed",
                body: "\(greeting)\n\nyour payment of \(amount) (reference \(payment)) failed: \(reason)\n")
        }
    }

    /// Minor units as the currency writes them: 1250 EUR → "12.50 EUR", 500 JPY → "500 JPY".
    static func format(_ minor: Int64, _ currency: String) -> String {
        let zeroDecimal: Set = ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
        let threeDecimal: Set = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
        let digits = zeroDecimal.contains(currency) ? 0 : threeDecimal.contains(currency) ? 3 : 2
        guard digits > 0 else { return "\(minor) \(currency)" }
        let scale = Int64([1, 10, 100, 1000][digits])
        let fraction = String(minor.magnitude % UInt64(scale))
        return "\(minor < 0 ? "-" : "")\(minor.magnitude / UInt64(scale)).\(String(repeating: "0", count: digits - fraction.count))\(fraction) \(currency)"
    }

    /// The recorder for `LogEmailProvider`: stores each would-be email in `email_log`.
    public static func emailLog(in database: PostgresPool) -> LogEmailProvider.Recorder {
        { messageID, email in
            var subject: String?, body: String?, template: String?, data: String?
            switch email.content {
            case .text(let s, let b): (subject, body) = (s, b)
            case .template(let id, let fields): (template, data) = (id, String(decoding: try JSONEncoder().encode(fields), as: UTF8.self))
            }
            _ = try await database.withConnection { connection in
                try await connection.execute("""
                    INSERT INTO email_log (message_id, recipient, sender, subject, body, template_id, template_data)
                    VALUES (\(messageID), \(email.to.email), \(email.from.email), \(subject), \(body), \(template), \(data)::jsonb)
                    """)
            }
        }
    }
}

extension HandlerFailure {
    /// A provider's failure as a handler failure: permanent when the provider refused the
    /// request (or Warren is misconfigured), transient otherwise; the provider's message
    /// goes into `x-warren-error`.
    init(_ error: ProviderError) {
        switch error.kind {
        case .transient: self.init(.transient, type: "\(error.provider).unavailable", error.description)
        case .permanent, .configuration: self.init(.permanent, type: "\(error.provider).rejected", error.description)
        case .outcomeUnknown: self.init(.permanent, type: EmailNotifications.outcomeUnknown, error.description)
        }
    }
}
