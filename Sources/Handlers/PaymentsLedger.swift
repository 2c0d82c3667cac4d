import Consumers
import Foundation
import Postgres
import WarrenCore

/// `payments.ledger`: one row per payment in `payments`. A success after a failure
/// updates the status (a failure never overrides a success); amount and currency never
/// silently change: an event that disagrees with the recorded payment is dead-lettered.
public struct PaymentsLedger: ConsumerModule {
    public let name = "payments.ledger"

    public init() {}

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        var failures: [Int: HandlerFailure] = [:]
        for (index, event) in events.enumerated() {
            guard let data = event.data, let paymentID = data["payment_id"]?.stringValue, let userID = data["user_id"]?.stringValue,
                  let amount = data["amount"]?.intValue, let currency = data["currency"]?.stringValue
            else {
                failures[index] = .permanent("payment.invalid", "payment_id, user_id, amount and currency are required")
                continue
            }
            let occurred = event.time ?? Date()
            let status: String
            let code: String?
            let message: String?
            switch event.type {
            case "payment.succeeded": (status, code, message) = ("succeeded", nil, nil)
            case "payment.failed": (status, code, message) = ("failed", data["failure_code"]?.stringValue, data["failure_message"]?.stringValue)
            default:
                failures[index] = .permanent("event.unhandled", "payments.ledger does not handle \(event.type)")
                continue
            }
            let changed = try await connection.execute("""
                INSERT INTO payments AS p (payment_id, user_id, amount, currency, status, failure_code, failure_message, occurred_at)
                VALUES (\(paymentID), \(userID), \(amount), \(currency), \(status), \(code), \(message), \(occurred))
                ON CONFLICT (payment_id) DO UPDATE SET
                    status = excluded.status, failure_code = excluded.failure_code,
                    failure_message = excluded.failure_message, occurred_at = excluded.occurred_at
                WHERE p.amount = excluded.amount AND p.currency = excluded.currency
                  AND p.status <> 'succeeded'
                """)
            guard changed == 0 else { continue }
            // Nothing changed: either the payment already succeeded (a later failure or a
            // repeated success changes nothing, by design) or the event contradicts it.
            let rows = try await connection.query("SELECT amount, currency FROM payments WHERE payment_id = \(paymentID)")
            if let row = rows.first {
                let recordedAmount = try row.decode(Int64.self, "amount")
                let recordedCurrency = try row.decode(String.self, "currency")
                if recordedAmount != amount || recordedCurrency != currency {
                    // Names which field differs, never the amounts themselves (payment data
                    // stays out of headers and logs).
                    let fields = [recordedAmount != amount ? "amount" : nil, recordedCurrency != currency ? "currency" : nil].compactMap { $0 }
                    failures[index] = .permanent(
                        "payment.conflict",
                        "payment \(paymentID): \(fields.joined(separator: " and ")) differ from the recorded payment; not changed")
                }
            }
        }
        return failures
    }
}
