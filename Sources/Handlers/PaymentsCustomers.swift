import Adapters
import Consumers
import Crypto
import Postgres
import WarrenCore

/// `payments.customers`: a payment-provider customer for every user, its id stored in
/// `payment_customers`, created at most once per user.
///
/// The provider call runs with no transaction open and carries an idempotency key derived
/// from the user id, not the event id: a redelivered event (after a crash, a dropped
/// connection) and a second `user.created` for the same user with another event id both get
/// the first customer back instead of a second one. Once the customer is recorded, later
/// events for that user make no call at all. A second event whose details differ (another
/// email) while the first is not yet recorded is refused by Stripe (`idempotency_error`)
/// and retried through the delay tiers, by when the first is recorded.
public struct PaymentsCustomers: CallingModule {
    public let name = "payments.customers"
    let provider: any PaymentProvider

    public init(provider: any PaymentProvider) {
        self.provider = provider
    }

    /// `warren-customer-<user id>`, or the id's SHA-256 when it would make the key longer
    /// than Stripe's 255 characters.
    public static func idempotencyKey(userID: String) -> String {
        guard userID.utf8.count > 200 else { return "warren-customer-\(userID)" }
        return "warren-customer-sha256-" + Hex.encode(SHA256.hash(data: Array(userID.utf8)))
    }

    public func handle(_ event: CloudEvent, delivery: DeliveryInfo, database: PostgresPool) async throws -> HandlerFailure? {
        guard event.type == "user.created" else {
            return .permanent("event.unhandled", "payments.customers does not handle \(event.type)")
        }
        guard let userID = event.data?["id"]?.stringValue, let email = event.data?["email"]?.stringValue else {
            return .permanent("user.invalid", "data.id and data.email are required")
        }
        let existing = try await database.withConnection { connection in
            try await connection.query("SELECT 1 FROM payment_customers WHERE user_id = \(userID)")
        }
        guard existing.isEmpty else { return nil }
        let customerID: String
        do {
            customerID = try await event.inTrace("payments.customers \(event.type)") {
                try await provider.createCustomer(
                    NewCustomer(userID: userID, email: email, name: event.data?["name"]?.stringValue),
                    idempotencyKey: Self.idempotencyKey(userID: userID))
            }
        } catch let error as ProviderError where error.code.hasPrefix("idempotency_error") || error.status == 409 {
            // Another event for this user used the key with other details (400
            // idempotency_error) or is using it right now (409 idempotency_key_in_use).
            return .transient(
                "stripe.idempotency_conflict",
                "another event for user \(userID) created its customer with other details and is not recorded yet: \(error.message)")
        } catch let error as ProviderError {
            return HandlerFailure(error)
        }
        // Lost with the process (or the database) here, the next delivery gets the same
        // customer back from the same key.
        _ = try await database.withConnection { connection in
            try await connection.execute("""
                INSERT INTO payment_customers (user_id, customer_id, provider, event_id)
                VALUES (\(userID), \(customerID), \(provider.name), \(event.id))
                ON CONFLICT (user_id) DO NOTHING
                """)
        }
        return nil
    }
}
