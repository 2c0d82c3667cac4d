import Crypto
import Foundation
import HTTPAPI
import Testing
import WarrenCore
@testable import Webhooks

@Suite struct WebhookSigningTests {
    /// The test vector the Standard Webhooks reference libraries share.
    @Test func signsTheStandardWebhooksReferenceVector() {
        let headers = Dictionary(
            uniqueKeysWithValues: WebhookSigning.headers(
                webhookID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8),
                secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]))
        #expect(headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(headers["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek")
        #expect(headers["webhook-timestamp"] == "1614265330")
    }

    @Test func xSignatureIsTheHexHMACOfTheBodyKeyedWithTheSecretAsGiven() {
        let body = Array(#"{"id":"e1"}"#.utf8)
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let headers = Dictionary(uniqueKeysWithValues: WebhookSigning.headers(webhookID: "msg_1", timestamp: 1, body: body, secrets: [secret]))
        let expected = Hex.encode(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))))
        #expect(headers["X-Signature"] == expected)
        // and our own inbound verifier accepts it, as a subscriber's would
        #expect(throws: Never.self) { try HexHMACVerifier(secrets: [secret]).verify(signature: headers["X-Signature"], body: body) }
    }

    @Test func signsWithEveryActiveSecretCurrentFirst() throws {
        let body = Array("{}".utf8)
        let (old, new) = (WebhookSigning.newSecret(), "a-plain-shared-secret-of-our-user")
        let headers = Dictionary(uniqueKeysWithValues: WebhookSigning.headers(webhookID: "msg_2", timestamp: 1_700_000_000, body: body, secrets: [new, old]))
        let signatures = try #require(headers["webhook-signature"]).split(separator: " ")
        #expect(signatures.count == 2)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        for secret in [new, old] {
            // Both verify alone: a subscriber holding either secret accepts the delivery.
            let verifier = try StandardWebhooksVerifier(secrets: [secret.hasPrefix("whsec_") ? secret : "whsec_" + Data(secret.utf8).base64EncodedString()])
            #expect(throws: Never.self) {
                try verifier.verify(id: "msg_2", timestamp: "1700000000", signature: headers["webhook-signature"], body: body, now: now)
            }
        }
    }

    @Test func newSecretsAreWhsecWith32RandomBytes() throws {
        let secret = WebhookSigning.newSecret()
        #expect(secret.hasPrefix("whsec_"))
        #expect(try #require(WebhookSigning.key(for: secret)).count == 32)
        #expect(WebhookSigning.newSecret() != secret)
        #expect(WebhookSigning.key(for: "whsec_%%%") == nil, "a whsec_ secret that is not base64 is refused, not used as text")
    }

    @Test func webhookIDIsStablePerEventAndSubscription() {
        let id = WebhookSigning.webhookID(subscription: "wh_a", event: "e1")
        #expect(id == WebhookSigning.webhookID(subscription: "wh_a", event: "e1"))
        #expect(id != WebhookSigning.webhookID(subscription: "wh_b", event: "e1"))
        #expect(id != WebhookSigning.webhookID(subscription: "wh_a", event: "e2"))
        #expect(id.hasPrefix("msg_") && id.count == 36)
    }
}
