import Foundation
@testable import HTTPAPI
import Testing
import WarrenCore

/// A verified Stripe event becomes Warren's event in the catalog's shape.
@Suite struct StripeEventsTests {
    static func stripeEvent(type: String, object: [String: JSONValue]) -> JSONValue {
        ["id": "evt_123", "type": .string(type), "created": 1_800_000_000, "data": ["object": .object(object)]]
    }

    static let intent: [String: JSONValue] = [
        "id": "pi_1", "object": "payment_intent", "amount": 1250, "amount_received": 1250, "currency": "eur", "customer": "cus_9",
        "metadata": ["user_id": "usr_1"],
    ]

    private func map(_ payload: JSONValue, customers: [String: String] = [:]) async throws -> CloudEvent {
        try await StripeEvents.cloudEvent(for: try StripeEvents.parse(payload)) { customers[$0] }
    }

    @Test func aSucceededPaymentIntentIsAPaymentSucceededEvent() async throws {
        let event = try await map(Self.stripeEvent(type: "payment_intent.succeeded", object: Self.intent))
        #expect(event.type == "payment.succeeded")
        #expect(event.id == "stripe:evt_123", "derived from Stripe's id: a redelivery is the same event")
        #expect(event.data == ["payment_id": "pi_1", "user_id": "usr_1", "amount": 1250, "currency": "EUR"])
        #expect(event.time == Date(timeIntervalSince1970: 1_800_000_000))
        let catalog = try EventCatalog(directory: Self.catalogDirectory)
        try catalog.validate(event)
    }

    @Test func aFailedPaymentIntentCarriesTheFailure() async throws {
        var intent = Self.intent
        intent["amount_received"] = 0
        intent["last_payment_error"] = ["code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."]
        let event = try await map(Self.stripeEvent(type: "payment_intent.payment_failed", object: intent))
        #expect(event.type == "payment.failed")
        #expect(event.data?["amount"] == 1250, "the intended amount when nothing was received")
        #expect(event.data?["failure_code"] == "insufficient_funds")
        #expect(event.data?["failure_message"] == "Your card has insufficient funds.")
        try EventCatalog(directory: Self.catalogDirectory).validate(event)
    }

    @Test func withoutMetadataTheUserComesFromTheCustomerWarrenCreated() async throws {
        var intent = Self.intent
        intent["metadata"] = [:]
        let event = try await map(Self.stripeEvent(type: "payment_intent.succeeded", object: intent), customers: ["cus_9": "usr_from_customer"])
        #expect(event.data?["user_id"] == "usr_from_customer")
    }

    @Test func withoutAnyUserTheErrorNamesTheField() async throws {
        var intent = Self.intent
        intent["metadata"] = nil
        intent["customer"] = nil
        await #expect { try await map(Self.stripeEvent(type: "payment_intent.succeeded", object: intent)) } throws: { error in
            (error as? EventError)?.field == "data.object.metadata.user_id"
        }
    }

    @Test func otherTypesArePublishedUnderTheOpenStripePattern() async throws {
        let event = try await map(Self.stripeEvent(type: "customer.subscription.created", object: ["id": "sub_1"]))
        #expect(event.type == "stripe.customer.subscription.created")
        #expect(event.data == ["id": "sub_1"])
        try EventCatalog(directory: Self.catalogDirectory).validate(event)
    }

    @Test func aPayloadThatIsNoStripeEventIsRefused() {
        #expect(throws: EventError.self) { try StripeEvents.parse(["type": "x", "data": ["object": [:]]]) }
        #expect(throws: EventError.self) { try StripeEvents.parse(["id": "evt", "type": "x", "data": "nope"]) }
    }

    static let catalogDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("events").path
}

@Suite struct APIKeyTests {
    @Test func aKeyPublishesOnlyWhatItsPatternsAllow() {
        let key = APIKey(name: "billing", eventPatterns: ["payment.*", "invoice.#"])
        #expect(key.mayPublish("payment.succeeded"))
        #expect(key.mayPublish("invoice.paid.late"))
        #expect(!key.mayPublish("user.created"))
        #expect(!APIKey(name: "none", eventPatterns: []).mayPublish("user.created"))
    }

    @Test func keysAreLongRandomAndStoredOnlyAsAHash() {
        let a = APIKeyStore.newSecret(), b = APIKeyStore.newSecret()
        #expect(a != b && a.hasPrefix("wk_") && a.count >= 3 + 43)
        #expect(APIKeyStore.hash(a).count == 64 && APIKeyStore.hash(a) != APIKeyStore.hash(b) && !APIKeyStore.hash(a).contains(a))
        for _ in 0..<100 { #expect(APIKeyStore.isWellFormed(APIKeyStore.newSecret())) }
        for garbage in ["", "wk_", "wk_" + String(repeating: "A", count: 42), "xx_" + String(repeating: "A", count: 43), "wk_" + String(repeating: "é", count: 43), "wk_" + String(repeating: "+", count: 43)] {
            #expect(!APIKeyStore.isWellFormed(garbage), "\(garbage)")
        }
    }

    @Test(arguments: ["127.0.0.1:8080", "0.0.0.0:80", "[::1]:9000"])
    func addressesParse(text: String) throws {
        _ = try HTTPServer.Configuration.address(text)
    }

    @Test(arguments: ["8080", ":8080", "host:", "host:http", "host:70000"])
    func badAddressesAreRefused(text: String) {
        #expect(throws: HTTPAPIError.self) { try HTTPServer.Configuration.address(text) }
    }
}
