import Crypto
import Foundation
@testable import HTTPAPI
import Testing
import WarrenCore

/// The two configurable schemes. Expected signatures come from the test (its own HMAC
/// call) or from the Standard Webhooks specification's published example, never from
/// Warren's verifiers.
@Suite struct WebhookSignatureTests {
    static let body = Array(#"{"id":"ord_1","total":1250}"#.utf8)

    static func hex(_ body: [UInt8], _ secret: String) -> String {
        HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    @Test func xSignatureVerifiesTheHexHMACOfTheBodyWithAnyOfTheSecrets() throws {
        let verifier = HexHMACVerifier(secrets: ["old", "new"])
        try verifier.verify(signature: Self.hex(Self.body, "new"), body: Self.body)
        try verifier.verify(signature: "sha256=" + Self.hex(Self.body, "old").uppercased(), body: Self.body)
        var changed = Self.body
        changed[3] ^= 1
        #expect(throws: SignatureFailure.mismatch("X-Signature")) { try verifier.verify(signature: Self.hex(Self.body, "new"), body: changed) }
        #expect(throws: SignatureFailure.mismatch("X-Signature")) { try verifier.verify(signature: Self.hex(Self.body, "other"), body: Self.body) }
        #expect(throws: SignatureFailure.missingHeader("X-Signature")) { try verifier.verify(signature: nil, body: Self.body) }
        #expect(throws: SignatureFailure.malformedHeader("X-Signature")) { try verifier.verify(signature: "zz", body: Self.body) }
    }

    /// The example in the Standard Webhooks specification's reference tests.
    static let specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let specID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let specTimestamp = "1614265330"
    static let specBody = Array(#"{"test": 2432232314}"#.utf8)
    static let specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    static let specNow = Date(timeIntervalSince1970: 1_614_265_330)

    @Test func standardWebhooksVerifiesTheSpecificationsExample() throws {
        let verifier = try StandardWebhooksVerifier(secrets: [Self.specSecret])
        let id = try verifier.verify(id: Self.specID, timestamp: Self.specTimestamp, signature: Self.specSignature, body: Self.specBody, now: Self.specNow)
        #expect(id == Self.specID)
        // Several signatures, other versions ignored, one valid.
        try verifier.verify(
            id: Self.specID, timestamp: Self.specTimestamp,
            signature: "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc \(Self.specSignature)", body: Self.specBody, now: Self.specNow)
    }

    @Test func standardWebhooksRefusals() throws {
        let verifier = try StandardWebhooksVerifier(secrets: ["whsec_other00000000000000000000000", Self.specSecret])
        func verify(id: String? = Self.specID, timestamp: String? = Self.specTimestamp, signature: String? = Self.specSignature, body: [UInt8] = Self.specBody, now: Date = Self.specNow) throws {
            try verifier.verify(id: id, timestamp: timestamp, signature: signature, body: body, now: now)
        }
        #expect(throws: SignatureFailure.mismatch("webhook-signature")) { try verify(body: Array(#"{"test": 2432232315}"#.utf8)) }
        #expect(throws: SignatureFailure.mismatch("webhook-signature")) { try verify(id: "msg_other") }
        #expect(throws: SignatureFailure.outsideTolerance("webhook-timestamp")) { try verify(now: Self.specNow.addingTimeInterval(301)) }
        #expect(throws: SignatureFailure.outsideTolerance("webhook-timestamp")) { try verify(now: Self.specNow.addingTimeInterval(-301)) }
        #expect(throws: SignatureFailure.missingHeader("webhook-id")) { try verify(id: nil) }
        #expect(throws: SignatureFailure.missingHeader("webhook-signature")) { try verify(signature: "") }
        #expect(throws: SignatureFailure.malformedHeader("webhook-timestamp")) { try verify(timestamp: "soon") }
        #expect(throws: SignatureFailure.malformedHeader("webhook-signature")) { try verify(signature: "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") }
    }

    @Test func aSecretThatIsNotBase64IsAConfigurationError() {
        #expect(throws: HTTPAPIError.self) { try StandardWebhooksVerifier(secrets: ["whsec_!!!"]) }
    }
}

@Suite struct WebhookSourcesTests {
    @Test func theShippedFileParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("webhooks/sources.yaml").path
        _ = try WebhookSources.load(path: path)
    }

    @Test func sourcesParseWithTheirSchemeTypeAndSecretVariable() throws {
        let sources = try WebhookSources.parse("""
            sources:
              acme:
                scheme: x-signature
                header: X-Acme-Signature
                secrets_env: ACME_SECRET
                type: acme.order.created
                id_field: id
              hooks:
                scheme: standard-webhooks
                secrets_env: HOOKS_SECRET
                type_field: event
                events: [hooks.#]
            """)
        #expect(sources.map(\.name) == ["acme", "hooks"])
        #expect(sources[0].scheme == .xSignature && sources[0].header == "X-Acme-Signature" && sources[0].eventType == .fixed("acme.order.created"))
        #expect(sources[1].scheme == .standardWebhooks && sources[1].header == "X-Signature" && sources[1].eventType == .field("event"))
        #expect(sources[1].eventPatterns == ["hooks.#"])
    }

    @Test(arguments: [
        ("sources:\n  a:\n    scheme: hmac\n    secrets_env: A\n    type: a.b", "sources.yaml:3: sources.a.scheme: unknown scheme 'hmac'"),
        ("sources:\n  a:\n    scheme: x-signature\n    type: a.b", "sources.a.secrets_env: missing"),
        ("sources:\n  a:\n    scheme: x-signature\n    secrets_env: A", "give exactly one of type"),
        ("sources:\n  a:\n    scheme: x-signature\n    secrets_env: A\n    type: a.b\n    secret: x", "sources.a.secret: unknown key"),
        ("sources:\n  Bad Name:\n    scheme: x-signature", "invalid source name"),
        ("sources:\n  stripe:\n    scheme: x-signature", "'stripe' is built in"),
        ("sources:\n  a:\n    scheme: standard-webhooks\n    secrets_env: A\n    type: a.b\n    header: X", "only x-signature sources name their header"),
        ("sources:\n  a:\n    scheme: x-signature\n    secrets_env: A\n    type_field: event", "sources.a.events: missing"),
        ("sources:\n  a:\n    scheme: x-signature\n    secrets_env: A\n    type: a.b\n    header: X Sig", "sources.yaml:6: sources.a.header: 'X Sig' is not a valid HTTP header name"),
    ])
    func brokenFilesNameTheLineAndTheKey(yaml: String, expected: String) {
        #expect { try WebhookSources.parse(yaml, file: "sources.yaml") } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func theEventTakesTheTypeThePayloadAndADerivedID() throws {
        let fixed = WebhookSource(name: "acme", scheme: .xSignature, header: "X-Signature", secretsVariable: "A", eventType: .fixed("acme.order.created"), idField: "id")
        let payload: JSONValue = ["id": 42, "event": "acme.order.paid"]
        let event = try fixed.event(payload: payload, deliveryID: fixed.deliveryID(in: payload, body: Array("{}".utf8)))
        #expect(event.type == "acme.order.created" && event.id == "acme:42" && event.source == "/webhooks/acme" && event.data == payload)
        // No id to go by (no id_field, or the payload lacks it): the body's SHA-256
        // (`printf '{}' | sha256sum`), so a replayed request is the same delivery.
        let digestOfEmptyObject = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        #expect(fixed.deliveryID(in: ["total": 1], body: Array("{}".utf8)) == digestOfEmptyObject)
        var anonymous = fixed
        anonymous.idField = nil
        #expect(anonymous.deliveryID(in: payload, body: Array("{}".utf8)) == digestOfEmptyObject)
        #expect(anonymous.deliveryID(in: payload, body: Array("{ }".utf8)) != digestOfEmptyObject)
        var fromField = fixed
        fromField.eventType = .field("event")
        fromField.eventPatterns = ["acme.#"]
        #expect(try fromField.event(payload: payload, deliveryID: nil).type == "acme.order.paid")
        #expect(fromField.mayPublish("acme.order.paid"))
        #expect(!fromField.mayPublish("payment.succeeded"), "the payload may not name a type outside the source's patterns")
        #expect(fixed.mayPublish("acme.order.created") && !fixed.mayPublish("acme.order.paid"))
        #expect(throws: EventError.self) { try fromField.event(payload: ["id": 1], deliveryID: nil) }
    }
}
