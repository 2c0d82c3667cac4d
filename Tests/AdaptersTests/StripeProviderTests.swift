import Adapters
import AsyncHTTPClient
import Foundation
import NIOCore
import ProviderFakes
import Testing
import WarrenCore

/// The Stripe adapter against a fake Stripe that checks the documented contract and
/// honours idempotency keys as Stripe does.
@Suite struct StripeAdapterTests {
    static let ada = NewCustomer(userID: "usr_1 & co+x", email: "ada+test@example.com", name: "Ada Lovelace-Byron ✓")

    @Test func aCustomerIsCreatedFormEncodedWithItsUserID() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        let id = try await fake.provider().createCustomer(Self.ada, idempotencyKey: "warren-e1-customer")
        let customer = try #require(fake.customers.first)
        #expect(id == customer.id && id.hasPrefix("cus_"))
        #expect(customer.email == "ada+test@example.com" && customer.name == "Ada Lovelace-Byron ✓" && customer.userID == "usr_1 & co+x")
        #expect(fake.server.requests.map(\.idempotencyKey) == ["warren-e1-customer"])
    }

    @Test func theSameIdempotencyKeyGivesTheSameCustomerAndCreatesNothing() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        let provider = try fake.provider()
        let first = try await provider.createCustomer(Self.ada, idempotencyKey: "warren-e2-customer")
        let again = try await provider.createCustomer(Self.ada, idempotencyKey: "warren-e2-customer")
        #expect(first == again)
        #expect(fake.customers.count == 1)
    }

    @Test func aPaymentIntentForAKnownCustomerAndAPermanentErrorForAnUnknownOne() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        let provider = try fake.provider()
        let customer = try await provider.createCustomer(Self.ada, idempotencyKey: "warren-e3-customer")
        let intent = try await provider.createPaymentIntent(
            NewPaymentIntent(amount: 1250, currency: "EUR", customerID: customer), idempotencyKey: "warren-e3-intent")
        #expect(intent.id.hasPrefix("pi_") && intent.status == "requires_payment_method")
        let stored = try #require(fake.intents.first)
        #expect(stored.amount == 1250 && stored.currency == "eur" && stored.customer == customer)

        let error = try await #require(throws: ProviderError.self) {
            try await provider.createPaymentIntent(NewPaymentIntent(amount: 100, currency: "EUR", customerID: "cus_missing"), idempotencyKey: "warren-e4-intent")
        }
        #expect(error.kind == .permanent && error.status == 400 && error.code == "invalid_request_error/resource_missing")
        #expect(error.message == "No such customer: 'cus_missing'")
    }

    @Test func aConnectionDroppedAfterProcessingIsRetriedWithTheSameKeyAndCreatesOneCustomer() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        fake.server.fail(.dropAfterProcessing)
        let id = try await fake.provider().createCustomer(Self.ada, idempotencyKey: "warren-e5-customer")
        #expect(fake.customers.map(\.id) == [id])
        // The retry was answered from the idempotency record: one request processed, one replayed.
        #expect(fake.server.requests.map(\.idempotencyKey) == ["warren-e5-customer"])
        #expect(fake.replayed == 1)
    }

    @Test func twoServerErrorsThenSuccessCreateOneCustomer() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        fake.server.fail(.status(500), .status(502))
        _ = try await fake.provider().createCustomer(Self.ada, idempotencyKey: "warren-e6-customer")
        #expect(fake.server.requests.count == 3)
        #expect(fake.customers.count == 1)
    }

    @Test func stripesErrorTypesDecideTransientOrPermanent() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        let cases: [(FakeFault, ProviderError.Kind)] = [
            (.status(402, type: "card_error", code: "card_declined", message: "Your card was declined."), .permanent),
            (.status(400, type: "invalid_request_error", code: "parameter_invalid", message: "Invalid email"), .permanent),
            (.status(400, type: "api_error", message: "Something went wrong on Stripe's end."), .transient),
            (.status(500, type: "api_error"), .transient),
            (.rateLimited(resetIn: .seconds(1)), .transient),
            (.hang(.seconds(3)), .transient),
        ]
        for (index, (fault, kind)) in cases.enumerated() {
            fake.server.fail(fault)
            let error = try await #require(throws: ProviderError.self) {
                try await fake.provider(timeout: .milliseconds(300), retry: .never)
                    .createCustomer(Self.ada, idempotencyKey: "warren-kinds-\(index)")
            }
            #expect(error.kind == kind, "\(fault)")
        }
        #expect(fake.customers.isEmpty)
    }

    @Test func aWrongKeyIs401AndTheKeyStaysSecret() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        let error = try await #require(throws: ProviderError.self) {
            try await fake.provider(key: "sk_test_wrong_secret").createCustomer(Self.ada, idempotencyKey: "k")
        }
        #expect(error.kind == .permanent && error.status == 401)
        #expect(!error.description.contains("wrong_secret"))
    }

    /// The fake holds Stripe's contract, so the adapter's passing tests mean something.
    @Test func theFakeRejectsRequestsThatBreakTheContract() async throws {
        let fake = try await FakeStripe.start()
        defer { fake.stop() }
        func post(
            _ body: String, contentType: String = "application/x-www-form-urlencoded", auth: String? = "Bearer sk_test_fake",
            key: String? = UUID().uuidString, version: String? = "2024-06-20"
        ) async throws -> Int {
            var request = HTTPClientRequest(url: fake.baseURL + "/v1/customers")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: contentType)
            if let auth { request.headers.add(name: "Authorization", value: auth) }
            if let key { request.headers.add(name: "Idempotency-Key", value: key) }
            if let version { request.headers.add(name: "Stripe-Version", value: version) }
            request.body = .bytes(ByteBuffer(string: body))
            return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code)
        }
        let valid = "email=a%40example.com&metadata%5Buser_id%5D=u1"
        #expect(try await post(valid) == 200)
        #expect(try await post(valid, auth: nil) == 401)
        #expect(try await post(valid, auth: "Bearer sk_test_other") == 401)
        #expect(try await post(valid, key: nil) == 400)
        #expect(try await post(valid, version: nil) == 400)
        #expect(try await post(#"{"email":"a@example.com"}"#, contentType: "application/json") == 400)
        #expect(try await post("email=a%4") == 400)
        #expect(try await post("metadata%5Buser_id%5D=u1") == 400)
        #expect(try await post("email=a%40example.com") == 400)
        // The same key with other parameters is Stripe's idempotency_error.
        #expect(try await post(valid, key: "reused") == 200)
        #expect(try await post("email=b%40example.com&metadata%5Buser_id%5D=u2", key: "reused") == 400)
        #expect(fake.customers.count == 2)
    }
}
