import AMQP
import Adapters
import Consumers
import Foundation
import Handlers
import Operations
import Postgres
import Locking
import ProviderFakes
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
                logger: TestEnvironment.logger)
        }

        @Test func aWelcomeAReceiptAndAFailureNoticeGoOutOnceEach() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("mail")
            let created = userCreated(user, name: "Ada", email: "ada-\(user)@example.com")
            harness.start(module: Self.module(harness, try fake.provider()))
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
            harness.start(module: Self.module(harness, try fake.provider(), templates: [.welcome: "d-welcome"]))
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
            harness.start(module: Self.module(harness, try fake.provider()))
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
            harness.start(module: Self.module(harness, try fake.provider()))
            let event = userCreated(TestEnvironment.uniqueName("flaky"))
            try await harness.publish([event])
            try await eventually("the event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(fake.server.requests.count == 3)
            #expect(fake.mail.count == 1)
        }

        @Test func anEventThatFailsAfterTheSendDoesNotSendAgain() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: FailsOnceAfterItsEffect(Self.module(harness, try fake.provider())))
            let event = userCreated(TestEnvironment.uniqueName("rollback"))
            try await harness.publish([event])
            try await eventually("the redelivered event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(harness.events.failures.contains { $0.messageID == event.id && $0.attempt == 1 }, "the rolled-back batch was retried")
            #expect(fake.mail.count == 1)
        }

        /// SendGrid took the email and then said nothing: it is neither sent again by the
        /// adapter's retries nor by the delay tiers, but dead-lettered as outcome-unknown;
        /// replaying it from the DLQ is ops' decision to send it again.
        @Test(arguments: [FakeFault.hangAfterProcessing(.seconds(3)), .dropAfterProcessing])
        func anEmailWhoseOutcomeIsUnknownIsDeadLetteredNotResent(fault: FakeFault) async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(fault)
            harness.start(module: Self.module(harness, try fake.provider(timeout: .milliseconds(500))))
            let event = userCreated(TestEnvironment.uniqueName("unknown"))
            try await harness.publish([event])
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            #expect(fake.mail.count == 1)
            #expect(fake.server.requests.count == 1, "the adapter did not send it again")
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.headers?[WarrenHeader.errorType]?.stringValue == "outcome-unknown")
            #expect(dead.properties.headers?[WarrenHeader.attempts]?.intValue == 1)
            #expect(try await harness.count("SELECT count(*) FROM email_sends WHERE event_id = \(event.id) AND state = 'unknown'") == 1)
            reportFault("SendGrid \(fault) after accepting", [
                "emails": fake.mail.count, "requests": fake.server.requests.count, "dead-lettered as outcome-unknown": 1,
            ])

            // Back in the DLQ and replayed by ops: sent again, once, and recorded as sent.
            let dlq = harness.spec.deadLetterQueueName
            try await harness.channel.publish(
                dead.body, exchange: "", routingKey: dlq, properties: dead.properties, mandatory: true)
            var selector = DeadLetterSelector()
            selector.ids = [event.id]
            let replayed = try await DeadLetterOperations(queues: DeadLetterQueues(connection: harness.amqp, logger: TestEnvironment.logger))
                .settle(.init(queue: dlq, action: .replay(.original), selector: selector, actor: "test"), auditIn: harness.database)
            #expect(replayed.count == 1)
            try await eventually("the replayed email went out") { fake.mail.count == 2 }
            try await eventually("recorded as sent") {
                try await harness.count("SELECT count(*) FROM email_sends WHERE event_id = \(event.id) AND state = 'sent'") == 1
            }
            try await eventually("everything settled") { try await harness.messages(in: harness.spec.queueName) == 0 }
            #expect(try await harness.messages(in: dlq) == 0)
            #expect(fake.mail.count == 2)
        }

        @Test func anIntentLeftByACrashDuringTheCallIsDeadLetteredNotSent() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            let event = userCreated(TestEnvironment.uniqueName("cut"))
            // What a process killed during its call to SendGrid leaves behind.
            _ = try await harness.database.withConnection { connection in
                try await connection.execute("""
                    INSERT INTO email_sends (event_id, kind, provider, state) VALUES (\(event.id), 'welcome', 'sendgrid', 'sending')
                    """)
            }
            harness.start(module: Self.module(harness, try fake.provider()))
            try await harness.publish([event])
            try await eventually("dead-lettered") { try await harness.messages(in: harness.spec.deadLetterQueueName) == 1 }
            let dead = try #require(try await harness.drainDeadLetters().first)
            #expect(dead.properties.headers?[WarrenHeader.errorType]?.stringValue == "outcome-unknown")
            #expect(dead.properties.headers?[WarrenHeader.error]?.stringValue?.contains("was cut off") == true)
            #expect(fake.server.requests.isEmpty)
        }

        @Test func aConnectionThatCannotBeMadeIsATransientFailureNotOutcomeUnknown() async throws {
            let harness = try await Self.harness()
            defer { Task { await harness.tearDown() } }
            // Nothing listens on port 1: SendGrid never got anything, so trying again is safe.
            let endpoint = try ProviderEndpoint(
                provider: "sendgrid", baseURL: "http://127.0.0.1:1", apiKey: APIKey("SG.test"), timeout: .milliseconds(500), retry: .never,
                rateLimiter: RateLimiter(rate: 1000, per: .seconds(1)))
            let event = userCreated(TestEnvironment.uniqueName("refused"))
            harness.start(module: Self.module(harness, SendGridProvider(endpoint: endpoint, logger: TestEnvironment.logger)))
            try await harness.publish([event])
            try await eventually("a transient failure, not outcome-unknown") {
                harness.events.failures.contains { $0.messageID == event.id && $0.failure.type == "sendgrid.unavailable" }
            }
            #expect(!harness.events.failures.contains { $0.failure.type == "outcome-unknown" })
            #expect(try await harness.count("SELECT count(*) FROM email_sends WHERE event_id = \(event.id)") == 0, "the intent was taken back")
        }

        /// One pool connection is enough: no transaction is held across the call to
        /// SendGrid (it used to deadlock on the first email).
        @Test func oneDatabaseConnectionIsEnough() async throws {
            let harness = try await ConsumerHarness.make(
                consumer: "email.notifications", bindings: ["user.created", "payment.succeeded", "payment.failed"], databaseConnections: 1)
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("one")
            try await insertUser(user, email: "one-\(user)@example.com", into: harness)
            harness.start(module: Self.module(harness, try fake.provider()))
            try await harness.publish([userCreated(user), payment("payment.succeeded", user: user), payment("payment.failed", user: user)])
            try await eventually("three emails went out") { fake.mail.count == 3 }
            try await eventually("everything settled") { try await harness.messages(in: harness.spec.queueName) == 0 }
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func aRejectedEmailIsDeadLetteredWithSendGridsMessage() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeSendGrid.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(400, message: "The from address does not match a verified Sender Identity."))
            harness.start(module: Self.module(harness, try fake.provider()))
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
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
            let user = TestEnvironment.uniqueName("cust")
            let event = userCreated(user, name: "Ada", email: "ada-\(user)@example.com")
            try await harness.publish([event])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            let customer = try #require(fake.customers.first)
            #expect(try await Self.storedCustomer(harness, user: user) == customer.id)
            #expect(customer.userID == user && customer.email == "ada-\(user)@example.com" && customer.name == "Ada")
            #expect(fake.server.requests.map(\.idempotencyKey) == ["warren-customer-\(user)"])
        }

        /// Two `user.created` for one user (upstream sent it twice, with two event ids):
        /// one customer.
        @Test func twoEventsForOneUserMakeOneCustomer() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
            let user = TestEnvironment.uniqueName("twice")
            let first = userCreated(user), second = userCreated(user)
            try await harness.publish([first, second])
            try await eventually("both applied") { try await harness.inboxCount(ids: [first.id, second.id]) == 2 }
            #expect(fake.customers.count == 1)
            #expect(try await Self.storedCustomer(harness, user: user) == fake.customers.first?.id)
        }

        /// A process that died after Stripe created the customer, before recording it:
        /// the next event for that user, whatever its id, gets that customer back.
        @Test func aCustomerCreatedBeforeACrashIsTheOneTheNextEventGets() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            let user = TestEnvironment.uniqueName("crashed")
            let orphan = try await fake.provider().createCustomer(
                NewCustomer(userID: user, email: "ada@example.com", name: "Ada"), idempotencyKey: PaymentsCustomers.idempotencyKey(userID: user))
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
            try await harness.publish([userCreated(user)])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            #expect(try await Self.storedCustomer(harness, user: user) == orphan)
            #expect(fake.customers.count == 1)
            #expect(fake.replayed == 1)

            // Other details while the first customer is not recorded: Stripe refuses the key,
            // and the event is retried (not dead-lettered) until the customer is recorded.
            let other = TestEnvironment.uniqueName("conflict")
            _ = try await fake.provider().createCustomer(
                NewCustomer(userID: other, email: "first@example.com", name: "Ada"), idempotencyKey: PaymentsCustomers.idempotencyKey(userID: other))
            let conflicting = userCreated(other, email: "second@example.com")
            try await harness.publish([conflicting])
            try await eventually("retried as an idempotency conflict") {
                harness.events.failures.contains { $0.messageID == conflicting.id && $0.failure.type == "stripe.idempotency_conflict" }
            }
            #expect(harness.events.failures.allSatisfy { $0.destination != .deadLetter(queue: harness.spec.deadLetterQueueName) })
            try await harness.publish([userCreated(other, email: "first@example.com")])
            try await eventually("both events for the user applied") { try await Self.storedCustomer(harness, user: other) != nil }
            try await eventually("the conflicting event applied on its retry") { try await harness.inboxCount(ids: [conflicting.id]) == 1 }
            #expect(fake.customers.count == 2)
            #expect(try await harness.messages(in: harness.spec.deadLetterQueueName) == 0)
        }

        @Test func aConnectionDroppedAfterStripeCreatedTheCustomerIsRetriedWithTheSameKey() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.dropAfterProcessing)
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
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
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
            let user = TestEnvironment.uniqueName("flaky")
            try await harness.publish([userCreated(user)])
            try await eventually("the customer id was stored") { try await Self.storedCustomer(harness, user: user) != nil }
            #expect(fake.server.requests.count == 3)
            #expect(fake.customers.count == 1)
        }

        @Test func anEventThatFailsAfterItsCustomerWasRecordedMakesNoSecondCall() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            harness.start(module: FailsOnceAfterItsEffect(PaymentsCustomers(provider: try fake.provider())))
            let user = TestEnvironment.uniqueName("redelivered")
            let event = userCreated(user)
            try await harness.publish([event])
            try await eventually("the redelivered event was applied") { try await harness.inboxCount(ids: [event.id]) == 1 }
            #expect(harness.events.failures.contains { $0.messageID == event.id && $0.attempt == 1 }, "the event came back")
            #expect(fake.customers.count == 1)
            #expect(fake.server.requests.count == 1, "the recorded customer needed no second call")
            #expect(try await Self.storedCustomer(harness, user: user) == fake.customers.first?.id)
        }

        @Test func aRejectedCustomerIsDeadLetteredWithStripesMessage() async throws {
            let harness = try await Self.harness()
            let fake = try await FakeStripe.start()
            defer { fake.stop(); Task { await harness.tearDown() } }
            fake.server.fail(.status(400, type: "invalid_request_error", code: "email_invalid", message: "Invalid email address: a@b"))
            harness.start(module: PaymentsCustomers(provider: try fake.provider()))
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

/// A module whose first event fails after its provider call, as a lost connection before
/// the inbox write would: the effect happened, and the event comes back.
private final class FailsOnceAfterItsEffect: CallingModule, Sendable {
    let inner: any CallingModule
    var name: String { inner.name }
    private let armed = Mutex(true)

    init(_ inner: any CallingModule) {
        self.inner = inner
    }

    func handle(_ event: CloudEvent, delivery: DeliveryInfo, database: PostgresPool) async throws -> HandlerFailure? {
        let failure = try await inner.handle(event, delivery: delivery, database: database)
        if armed.withLock({ armed in defer { armed = false }; return armed }) { throw TestFailure("simulated failure after the provider call") }
        return failure
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
