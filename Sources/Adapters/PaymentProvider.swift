/// Creates customers and payment intents at a payment provider. Every call takes an
/// idempotency key: the same key gives the same object back, never a second one, so a
/// redelivered event or a retried request after a dropped connection is safe.
public protocol PaymentProvider: Sendable {
    /// `stripe`: recorded with every customer.
    var name: String { get }
    /// Returns the provider's customer id (`cus_…`).
    func createCustomer(_ customer: NewCustomer, idempotencyKey: String) async throws -> String
    func createPaymentIntent(_ intent: NewPaymentIntent, idempotencyKey: String) async throws -> PaymentIntent
}

public struct NewCustomer: Sendable, Hashable {
    public var userID: String
    public var email: String
    public var name: String?

    public init(userID: String, email: String, name: String?) {
        self.userID = userID
        self.email = email
        self.name = name
    }
}

public struct NewPaymentIntent: Sendable, Hashable {
    /// Minor units of `currency`.
    public var amount: Int64
    /// ISO 4217, any case.
    public var currency: String
    public var customerID: String

    public init(amount: Int64, currency: String, customerID: String) {
        self.amount = amount
        self.currency = currency
        self.customerID = customerID
    }
}

public struct PaymentIntent: Sendable, Hashable, Decodable {
    public var id: String
    /// e.g. `requires_payment_method`.
    public var status: String
}
