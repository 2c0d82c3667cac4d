import AMQP
import Adapters
import Consumers
import Foundation
import Handlers
import Postgres
import Synchronization
import Testing
import WarrenCore

extension Integration {
    /// email.notifications against a fake SendGrid, from a published event to the email.
    @Suite struct EmailNotificationsTests {
        static func harness() async throws -> ConsumerHarness {
            try await ConsumerHarness.make(consumer: "email.notifications", bindings: ["user.created", "payment.succeeded", "payment.failed"])
        }

        static func module(_ harness: ConsumerHarness, _ provider: any EmailProvider, templates: [EmailNotifications.Kind: String] = [:]) -> EmailNotifications {
            EmailNotifications(
                provider: provider, settings: .init(from: EmailAddress("no-reply@example.com", name: "Warren"), templates: templates),
                records: harness.database, logger: TestEnvironment.logger)
        }

        @Test func aWelcomeAReceiptAndAFailureNoticeGoOutOnceEach() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("mail")
            let created = userCreated(user, name: "Ada", email: "ada-\(user)@example.com")
            harness.start(module: Self.module(harness, try SendGridAdapterTests.provider(fake)))
            try await harness.publish([created])
            try await eventually("the welcome email went out") { fake.mail.count == 1 }
            let welcome = fake.mail[0]
            #expect(welcome.to == "ada-\(user)@example.com" && welcome.toName == "Ada" && welcome.subject == "Welcome")
            #expect(try await harness.count(
                "SELECT count(*) FROM email_sends WHERE event_id = \(created.id) AND kind = 'welcome' AND provider = 'sendgrid' AND provider_message_id = \(welcome.messageID)") == 1)

            // Payments carry only the user id: the address comes from the users projection.
            try await insertUser(user, email: "ada-\(user)@example.com", into: harness)
            try await harness.publish([payment("payment.succeeded", user: user), payment("payment.failed", user: user)])
            try await eventually("the receipt and the failure notice went out") { fake.mail.count == 3 }
            let receipt = try #require(fake.mail.first { $0.subject == "Payment receipt" })
            let failure = try #require(fake.mail.first { $0.subject == "Your payment failed" })
            #expect(receipt.to == "ada-\(user)@example.com" && receipt.text?.contains("12.50 EUR") == true)
            #expect(failure.text?.contains("Your card was declined.") == true)
            try await eventually("everything settled") { try await harness.messages(in: harness.spec.queueName) == 0 }
            #expect(fake.mail.count == 3)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func aConfiguredTemplateReplacesThePlainEmail() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: Self.module(harness, try SendGridAdapterTests.provider(fake), templates: [.welcome: "d-welcome"]))
            let user = TestEnvironment.uniqueName("tmpl")
            try await harness.publish([userCreated(user, name: "Grace")])
            try await eventually("the templated email went out") { fake.mail.count == 1 }
            #expect(fake.mail[0].templateID == "d-welcome")
            #expect(fake.mail[0].templateData?["name"] == "Grace" && fake.mail[0].templateData?["id"] == .string(user))
        }

        @Test func aPaymentForAUserNotYetProjectedIsRetriedUntilTheUserArrives() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: Self.module(harness, try SendGridAdapterTests.provider(fake)))
            let user = TestEnvironment.uniqueName("late")
            try await harness.publish([payment("payment.succeeded", user: user)])
            try await eventually("a transient failure for the unknown address") {
                harness.events.failures.contains { $0.failure.type == "email.recipient_unknown" && $0.destination != .deadLetter(queue: harness.spec.deadLetterQueueName) }
            }
            #expect(fake.mail.isEmpty)
            try await insertUser(user, email: "late-\(user)@example.com", into: harness)
            try await eventually("the receipt went out once the user was known") { fake.mail.count == 1 }
            #expect(fake.mail[0].to == "late-\(user)@example.com")
        }

        @Test func twoServerErrorsThenSuccessSendOneEmail() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(500), .status(500))
            harness.start(module: Self.module(harness, try SendGridAdapterTests.provider(fake)))
            let event = userCreated(TestEnvironment.uniqueName("flaky"))
            try await harness.publish([event])
            try await eventually("the event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(fake.server.requests.count == 3)
            #expect(fake.mail.count == 1)
        }

        @Test func aBatchRolledBackAfterTheSendDoesNotSendAgain() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: RollsBackOnce(Self.module(harness, try SendGridAdapterTests.provider(fake))))
            let event = userCreated(TestEnvironment.uniqueName("rollback"))
            try await harness.publish([event])
            try await eventually("the redelivered event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(harness.events.failures.contains { $0.messageID == event.id && $0.attempt == 1 }, "the rolled-back batch was retried")
            #expect(fake.mail.count == 1)
        }

        @Test func aRejectedEmailIsDeadLetteredWithSendGridsMessage() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(400, message: "The from address does not match a verified Sender Identity."))
            harness.start(module: Self.module(harness, try SendGridAdapterTests.provider(fake)))
            let event = userCreated(TestEnvironment.uniqueName("rejected"))
            try await harness.publish([event])
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.messageID == event.id)
            #expect(dead.properties.headers?[WarrenHeader.errorType]?.stringValue == "sendgrid.rejected")
            #expect(dead.properties.headers?[WarrenHeader.error]?.stringValue?.contains("The from address does not match a verified Sender Identity.") == true)
            #expect(dead.properties.headers?[WarrenHeader.attempts]?.intValue == 1)
            #expect(fake.server.requests.count == 1)
        }

        @Test func withoutSendGridTheLogProviderStoresTheWouldBeEmail() async throws {
            let harness = try await Self.harness()
            defer { Task { await harness.tearDown() } }
            let provider = LogEmailProvider(logger: TestEnvironment.logger, record: EmailNotifications.emailLog(in: harness.database))
            harness.start(module: Self.module(harness, provider))
            let user = TestEnvironment.uniqueName("logged")
            let event = userCreated(user, email: "log-\(user)@example.com")
            try await harness.publish([event])
            try await eventually("the email was logged") {
                try await harness.count("SELECT count(*) FROM email_log WHERE recipient = \("log-\(user)@example.com") AND subject = 'Welcome'") == 1
            }
            try await eventually("the send was recorded") {
                try await harness.count("""
                    SELECT count(*) FROM email_sends s JOIN email_log l ON l.message_id = s.provider_message_id
                    WHERE s.event_id = \(event.id) AND s.provider = 'log'
                    """) == 1
            }
        }
    }

    /// payments.customers against a fake Stripe, from a published user.created to the
    /// stored customer id.
    @Suite struct PaymentsCustomersTests {
        static func harness() async throws -> ConsumerHarness {
            try await ConsumerHarness.make(consumer: "payments.customers", bindings: ["user.created"])
        }

        static func storedCustomer(_ harness: ConsumerHarness, user: String) async throws -> String? {
            try await harness.database.withConnection { connection in
                try await connection.query("SELECT customer_id FROM payment_customers WHERE user_id = \(user)").first?.decode(String.self, "customer_id")
            }
        }

        @Test func aUserBecomesOneStripeCustomer() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: PaymentsCustomers(provider: try StripeAdapterTests.provider(fake)))
            let user = TestEnvironment.uniqueName("cust")
            let event = userCreated(user, name: "Ada", email: "ada-\(user)@example.com")
            try await harness.publish([event])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            let customer = try #require(fake.customers.first)
            #expect(try await Self.storedCustomer(harness, user: user) == customer.id)
            #expect(customer.userID == user && customer.email == "ada-\(user)@example.com" && customer.name == "Ada")
            #expect(fake.server.requests.map(\.idempotencyKey) == ["warren-\(event.id)-customer"])
        }

        @Test func aConnectionDroppedAfterStripeCreatedTheCustomerIsRetriedWithTheSameKey() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.dropAfterProcessing)
            harness.start(module: PaymentsCustomers(provider: try StripeAdapterTests.provider(fake)))
            let user = TestEnvironment.uniqueName("drop")
            try await harness.publish([userCreated(user)])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            #expect(fake.customers.count == 1)
            #expect(fake.replayed == 1)
            #expect(try await Self.storedCustomer(harness, user: user) == fake.customers.first?.id)
        }

        @Test func twoServerErrorsThenSuccessCreateOneCustomer() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(500), .status(500))
            harness.start(module: PaymentsCustomers(provider: try StripeAdapterTests.provider(fake)))
            let user = TestEnvironment.uniqueName("flaky")
            try await harness.publish([userCreated(user)])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            #expect(fake.server.requests.count == 3)
            #expect(fake.customers.count == 1)
        }

        @Test func aRedeliveredEventReusesTheIdempotencyKeyAndCreatesNothingNew() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: RollsBackOnce(PaymentsCustomers(provider: try StripeAdapterTests.provider(fake))))
            let user = TestEnvironment.uniqueName("redelivered")
            let event = userCreated(user)
            try await harness.publish([event])
            try await eventually("the redelivered event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(fake.customers.count == 1)
            #expect(fake.replayed == 1)
            #expect(try await Self.storedCustomer(harness, user: user) == fake.customers.first?.id)
        }

        @Test func aRejectedCustomerIsDeadLetteredWithStripesMessage() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(400, type: "invalid_request_error", code: "email_invalid", message: "Invalid email address: a@b"))
            harness.start(module: PaymentsCustomers(provider: try StripeAdapterTests.provider(fake)))
            let user = TestEnvironment.uniqueName("bad")
            try await harness.publish([userCreated(user)])
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.headers?[WarrenHeader.errorType]?.stringValue == "stripe.rejected")
            #expect(dead.properties.headers?[WarrenHeader.error]?.stringValue?.contains("Invalid email address: a@b") == true)
            #expect(try await Self.storedCustomer(harness, user: user) == nil)
        }
    }
}

/// A module whose first batch fails after its provider calls, as a lost database
/// connection at commit would: the batch rolls back and the event comes back.
private final class RollsBackOnce: ConsumerModule, Sendable {
    let inner: any ConsumerModule
    var name: String { inner.name }
    private let armed = Mutex(true)

    init(_ inner: any ConsumerModule) {
        self.inner = inner
    }

    func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        let failures = try await inner.apply(events, on: connection)
        if armed.withLock({ armed in defer { armed = false }; return armed }) { throw TestFailure("simulated failure after the provider call") }
        return failures
    }
}

private func payment(_ type: String, user: String) -> CloudEvent {
    var data: [String: JSONValue] = ["payment_id": .string("pi_\(UUID().uuidString.prefix(8))"), "user_id": .string(user), "amount": 1250, "currency": "EUR"]
    if type == "payment.failed" {
        data["failure_code"] = "card_declined"
        data["failure_message"] = "Your card was declined."
    }
    return CloudEvent(type: type, source: "/tests", data: .object(data))
}

private func insertUser(_ id: String, email: String, into harness: ConsumerHarness) async throws {
    _ = try await harness.database.withConnection { connection in
        try await connection.execute("INSERT INTO users (id, name, email, last_event_time) VALUES (\(id), 'Ada', \(email), now())")
    }
}
