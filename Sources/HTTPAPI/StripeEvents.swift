import Foundation
import WarrenCore

/// Turns a verified Stripe event into Warren's event. `payment_intent.succeeded` and
/// `payment_intent.payment_failed` become `payment.succeeded` / `payment.failed` in the
/// catalog's shape; every other type is published as `stripe.<type>` with Stripe's
/// object as data (the catalog lists `stripe.#` as open). The CloudEvent id is derived
/// from Stripe's event id (`stripe:<id>`), so a redelivered Stripe event is the same Warren event.
public enum StripeEvents {
    public static let source = "/webhooks/stripe"

    /// The parts of a Stripe event Warren reads. Errors name the JSON path.
    public struct Parsed: Sendable {
        public var id: String
        public var type: String
        public var object: JSONValue
        public var created: Date?
    }

    public static func parse(_ payload: JSONValue) throws(EventError) -> Parsed {
        guard let id = payload["id"]?.stringValue, !id.isEmpty else { throw EventError(.invalidAttribute, field: "id", "a Stripe event has a string id") }
        guard let type = payload["type"]?.stringValue, !type.isEmpty else { throw EventError(.invalidAttribute, field: "type", "a Stripe event has a string type") }
        guard let object = payload["data"]?["object"], case .object = object else {
            throw EventError(.invalidAttribute, field: "data.object", "a Stripe event carries its object in data.object")
        }
        return Parsed(id: id, type: type, object: object, created: payload["created"]?.intValue.map { Date(timeIntervalSince1970: TimeInterval($0)) })
    }

    /// Warren's event for `event`. `userForCustomer` finds the user of a Stripe customer
    /// Warren created (payments.customers) when the PaymentIntent has no `metadata.user_id`.
    public static func cloudEvent(
        for event: Parsed, userForCustomer: (String) async throws -> String?
    ) async throws -> CloudEvent {
        let id = WebhookSource.eventID(source: "stripe", deliveryID: event.id)
        switch event.type {
        case "payment_intent.succeeded", "payment_intent.payment_failed":
            let intent = event.object
            let path = "data.object"
            guard let paymentID = intent["id"]?.stringValue else { throw EventError(.invalidAttribute, field: "\(path).id", "the PaymentIntent has no id") }
            guard let amount = (intent["amount_received"]?.intValue).flatMap({ $0 > 0 ? $0 : nil }) ?? intent["amount"]?.intValue else {
                throw EventError(.invalidAttribute, field: "\(path).amount", "the PaymentIntent has no integer amount")
            }
            guard let currency = intent["currency"]?.stringValue else { throw EventError(.invalidAttribute, field: "\(path).currency", "the PaymentIntent has no currency") }
            var user = intent["metadata"]?["user_id"]?.stringValue
            if user == nil, let customer = intent["customer"]?.stringValue { user = try await userForCustomer(customer) }
            guard let user, !user.isEmpty else {
                throw EventError(
                    .invalidAttribute, field: "\(path).metadata.user_id",
                    "no user: set metadata.user_id on the PaymentIntent, or use a customer Warren created")
            }
            var data: [String: JSONValue] = [
                "payment_id": .string(paymentID), "user_id": .string(user), "amount": .integer(amount), "currency": .string(currency.uppercased()),
            ]
            if event.type == "payment_intent.payment_failed" {
                let failure = intent["last_payment_error"]
                data["failure_code"] = .string(failure?["decline_code"]?.stringValue ?? failure?["code"]?.stringValue ?? "payment_failed")
                data["failure_message"] = .string(failure?["message"]?.stringValue ?? "")
                return CloudEvent(type: "payment.failed", source: source, data: .object(data), id: id, time: event.created ?? Date(), subject: paymentID)
            }
            return CloudEvent(type: "payment.succeeded", source: source, data: .object(data), id: id, time: event.created ?? Date(), subject: paymentID)
        default:
            return CloudEvent(type: "stripe." + event.type, source: source, data: event.object, id: id, time: event.created ?? Date())
        }
    }
}
