import WarrenCore

/// Sends one email and says under which id the provider accepted it.
public protocol EmailProvider: Sendable {
    /// `sendgrid`, `log`: recorded with every send.
    var name: String { get }
    /// Returns the provider's message id (nil when it gave none) once the provider has
    /// accepted the email; throws a `ProviderError` otherwise.
    func send(_ email: Email) async throws -> String?
}

public struct EmailAddress: Sendable, Hashable {
    public var email: String
    public var name: String?

    public init(_ email: String, name: String? = nil) {
        self.email = email
        self.name = name
    }
}

public struct Email: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        /// A plain-text email.
        case text(subject: String, body: String)
        /// A provider-side template (SendGrid dynamic template `d-…`) and its data.
        case template(id: String, data: [String: JSONValue])
    }

    public var to: EmailAddress
    public var from: EmailAddress
    public var content: Content

    public init(to: EmailAddress, from: EmailAddress, content: Content) {
        self.to = to
        self.from = from
        self.content = content
    }
}
