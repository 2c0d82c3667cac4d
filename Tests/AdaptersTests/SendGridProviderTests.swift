import Adapters
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ProviderFakes
import Testing
import WarrenCore

/// The SendGrid adapter against a fake SendGrid that checks the documented contract.
@Suite struct SendGridAdapterTests {
    static let plain = Email(
        to: EmailAddress("ada@example.com", name: "Ada"), from: EmailAddress("no-reply@example.com", name: "Warren"),
        content: .text(subject: "Welcome", body: "Hello Ada"))

    @Test func aPlainEmailIsAcceptedWithTheProvidersMessageID() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        let id = try await fake.provider().send(Self.plain)
        let mail = try #require(fake.mail.first)
        #expect(id == mail.messageID)
        #expect(mail.to == "ada@example.com" && mail.toName == "Ada" && mail.from == "no-reply@example.com")
        #expect(mail.subject == "Welcome" && mail.text == "Hello Ada" && mail.templateID == nil)
    }

    @Test func aDynamicTemplateCarriesItsData() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        var email = Self.plain
        email.content = .template(id: "d-welcome", data: ["name": "Ada", "amount": 1250])
        _ = try await fake.provider().send(email)
        let mail = try #require(fake.mail.first)
        #expect(mail.templateID == "d-welcome")
        #expect(mail.templateData == ["name": "Ada", "amount": 1250])
    }

    @Test func aWrongKeyIsPermanentWithSendGridsMessageAndNeverShowsTheKey() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        let error = try await #require(throws: ProviderError.self) { try await fake.provider(key: "SG.wrong-secret").send(Self.plain) }
        #expect(error.kind == .permanent && error.status == 401)
        #expect(error.message == "The provided authorization grant is invalid, expired, or revoked")
        #expect(!error.description.contains("SG.wrong-secret") && !"\(error)".contains("wrong-secret"))
        #expect(fake.mail.isEmpty)
    }

    /// A redirect would carry the request, API key included, wherever it points (here
    /// plain http on another port): never followed, the call fails permanently.
    @Test func aRedirectIsNeverFollowed() async throws {
        let fake = try await FakeSendGrid.start()
        let elsewhere = try await FakeSendGrid.start()
        defer { fake.stop(); elsewhere.stop() }
        fake.server.fail(.redirect(to: elsewhere.baseURL + "/v3/mail/send"))
        let error = try await #require(throws: ProviderError.self) { try await fake.provider().send(Self.plain) }
        #expect(error.kind == .permanent && error.status == 307)
        #expect(fake.server.requests.count == 1, "not retried")
        #expect(elsewhere.server.requests.isEmpty && elsewhere.mail.isEmpty, "the redirect target never saw the request")
    }

    @Test func aRejected400IsPermanentAndNotRetried() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        fake.server.fail(.status(400, message: "The from address does not match a verified Sender Identity."))
        let error = try await #require(throws: ProviderError.self) { try await fake.provider().send(Self.plain) }
        #expect(error.kind == .permanent && error.status == 400)
        #expect(error.message == "The from address does not match a verified Sender Identity.")
        #expect(fake.server.requests.count == 1)
    }

    @Test func twoServerErrorsAreRetriedAndOneEmailGoesOut() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        fake.server.fail(.status(500), .status(503))
        _ = try await fake.provider().send(Self.plain)
        #expect(fake.server.requests.count == 3)
        #expect(fake.mail.count == 1)
    }

    @Test func aShort429WaitsForTheResetAndALongOneGoesToTheDelayTiers() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        fake.server.fail(.rateLimited(resetIn: .seconds(1)))
        let started = ContinuousClock.now
        _ = try await fake.provider().send(Self.plain)
        #expect(ContinuousClock.now - started >= .milliseconds(900))
        #expect(fake.mail.count == 1)

        fake.server.fail(.rateLimited(resetIn: .seconds(60)))
        let error = try await #require(throws: ProviderError.self) { try await fake.provider().send(Self.plain) }
        #expect(error.kind == .transient && error.status == 429)
        #expect(error.retryAfter.map { $0 > .seconds(50) } == true)
        #expect(fake.server.requests.count == 3)
    }

    /// From the client's side a server that hangs may have accepted the email.
    @Test func aHangingServerIsAnUnknownOutcomeWithinTheTimeout() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        fake.server.fail(.hang(.seconds(3)))
        let started = ContinuousClock.now
        let error = try await #require(throws: ProviderError.self) {
            try await fake.provider(timeout: .milliseconds(300)).send(Self.plain)
        }
        #expect(error.kind == .outcomeUnknown && error.message.hasPrefix("no answer from /v3/mail/send within"))
        #expect(fake.server.requests.count == 1)
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    /// SendGrid has no idempotency key: once the request is out, no answer means the
    /// email may have been accepted, and the adapter does not send it again.
    @Test(arguments: [FakeFault.hangAfterProcessing(.seconds(3)), .dropAfterProcessing])
    func noAnswerAfterTheRequestWentOutIsAnUnknownOutcomeNotARetry(fault: FakeFault) async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        fake.server.fail(fault)
        let error = try await #require(throws: ProviderError.self) {
            try await fake.provider(timeout: .milliseconds(500)).send(Self.plain)
        }
        #expect(error.kind == .outcomeUnknown && error.code == "outcome-unknown")
        #expect(fake.server.requests.count == 1)
        #expect(fake.mail.count == 1)
    }

    /// Nothing listens on port 1: the request never left, so it is safe to try again.
    @Test func aConnectionThatCannotBeMadeIsTransientAsNothingWasSent() async throws {
        let endpoint = try ProviderEndpoint(
            provider: "sendgrid", baseURL: "http://127.0.0.1:1", apiKey: APIKey("SG.test"), timeout: .milliseconds(500), retry: .never,
            rateLimiter: RateLimiter(rate: 1000, per: .seconds(1)))
        let error = try await #require(throws: ProviderError.self) {
            try await SendGridProvider(endpoint: endpoint, logger: fakesLogger).send(Self.plain)
        }
        #expect(error.kind == .transient && error.code == "connection", "\(error)")
    }

    @Test func theRateLimiterHoldsTheConfiguredRate() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        let provider = try fake.provider(limiter: RateLimiter(rate: 5, per: .seconds(1), burst: 1))
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { _ = try await provider.send(Self.plain) } }
            try await group.waitForAll()
        }
        let times = fake.server.requests.map(\.receivedAt).sorted()
        #expect(times.count == 6)
        // 5 per second, one at a time: request n (from 0) no earlier than n × 200 ms after
        // the start, and the limiter no slower than it needs to be.
        for (n, time) in times.enumerated() { #expect(time - started >= .milliseconds(200 * n - 20)) }
        #expect(try #require(times.last) - started < .seconds(3))
    }

    @Test func baseURLsMustBeHTTPSExceptOnLoopback() throws {
        let limiter = RateLimiter(rate: 1, per: .seconds(1))
        for url in ["https://api.sendgrid.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"] {
            #expect(throws: Never.self) { try ProviderEndpoint(provider: "sendgrid", baseURL: url, apiKey: APIKey("k"), rateLimiter: limiter) }
        }
        for url in ["http://api.sendgrid.com", "http://10.0.0.1", "ftp://localhost", "api.sendgrid.com"] {
            let error = try #require(throws: ProviderError.self) {
                try ProviderEndpoint(provider: "sendgrid", baseURL: url, apiKey: APIKey("SG.secret"), rateLimiter: limiter)
            }
            #expect(error.kind == .configuration && !error.description.contains("SG.secret"))
        }
        let settings = ProviderSettings(environment: ["SENDGRID_API_KEY": "SG.secret", "WARREN_SENDGRID_URL": "http://mail.example.com"])
        #expect(throws: ProviderError.self) { try settings.emailProvider(logger: fakesLogger) }
        #expect(try ProviderSettings(environment: [:]).emailProvider(logger: fakesLogger) is LogEmailProvider)
        #expect(try ProviderSettings(environment: [:]).paymentProvider(logger: fakesLogger) == nil)
    }

    /// The fake holds the provider's contract, so the adapter's passing tests mean something.
    @Test func theFakeRejectsRequestsThatBreakTheContract() async throws {
        let fake = try await FakeSendGrid.start()
        defer { fake.stop() }
        func post(_ body: String, contentType: String = "application/json", auth: String? = "Bearer SG.test-key") async throws -> (Int, String) {
            var request = HTTPClientRequest(url: fake.baseURL + "/v3/mail/send")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: contentType)
            if let auth { request.headers.add(name: "Authorization", value: auth) }
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 16)))
        }
        let valid = #"{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"b@example.com"},"subject":"s","content":[{"type":"text/plain","value":"v"}]}"#
        #expect(try await post(valid).0 == 202)
        #expect(try await post(valid, auth: nil).0 == 401)
        #expect(try await post(valid, auth: "Bearer nope").1.contains("authorization grant is invalid"))
        #expect(try await post(valid, contentType: "text/plain").0 == 400)
        #expect(try await post("{not json").0 == 400)
        #expect(try await post(#"{"personalizations":[{"to":[{"email":"a@example.com"}]}],"subject":"s","content":[{"type":"text/plain","value":"v"}]}"#) .1.contains("The from object must be provided"))
        #expect(try await post(#"{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"b@example.com"}}"#).0 == 400)
        #expect(fake.mail.count == 1)
    }
}
