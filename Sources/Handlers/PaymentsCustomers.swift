import Adapters
import Consumers
import Postgres
import WarrenCore

/// `payments.customers`: a payment-provider customer for every `user.created`, its id
/// stored in `payment_customers`. The provider call carries an idempotency key derived
/// from the event id, so a redelivered event (after a rollback, a crash, a dropped
/// connection) gets the same customer back instead of a second one.
public struct PaymentsCustomers: ConsumerModule {
    public let name = "payments.customers"
    let provider: any PaymentProvider

    public init(provider: any PaymentProvider) {
        self.provider = provider
    }

    public static func idempotencyKey(eventID: String) -> String { "warren-\(eventID)-customer" }

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        var failures: [Int: HandlerFailure] = [:]
        for (index, event) in events.enumerated() {
            guard event.type == "user.created" else {
                failures[index] = .permanent("event.unhandled", "payments.customers does not handle \(event.type)")
                continue
            }
            guard let userID = event.data?["id"]?.stringValue, let email = event.data?["email"]?.stringValue else {
                failures[index] = .permanent("user.invalid", "data.id and data.email are required")
                continue
            }
            let existing = try await connection.query("SELECT 1 FROM payment_customers WHERE user_id = \(userID)")
            guard existing.isEmpty else { continue }
            let customerID: String
            do {
                customerID = try await event.inTrace("payments.customers \(event.type)") {
                    try await provider.createCustomer(
                        NewCustomer(userID: userID, email: email, name: event.data?["name"]?.stringValue),
                        idempotencyKey: Self.idempotencyKey(eventID: event.id))
                }
            } catch let error as ProviderError {
                failures[index] = HandlerFailure(error)
                continue
            }
            try await connection.execute("""
                INSERT INTO payment_customers (user_id, customer_id, provider, event_id)
                VALUES (\(userID), \(customerID), \(provider.name), \(event.id))
                ON CONFLICT (user_id) DO NOTHING
                """)
        }
        return failures
    }
}
