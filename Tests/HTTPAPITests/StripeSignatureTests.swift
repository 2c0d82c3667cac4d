import Crypto
import Foundation
@testable import HTTPAPI
import Testing

/// `Stripe-Signature` as Stripe documents it. The signatures here are computed by the
/// test itself (HMAC-SHA256 over "{t}.{body}", hex), not by anything in Warren.
@Suite struct StripeSignatureTests {
    static let secret = "whsec_test_secret"
    static let body = Array(#"{"id":"evt_1","type":"payment_intent.succeeded"}"#.utf8)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let t = Int64(1_800_000_000)

    static func sign(_ body: [UInt8], t: Int64, secret: String = secret) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    let verifier = StripeSignatureVerifier(secrets: [secret])

    @Test func aValidSignatureVerifies() throws {
        #expect(try verifier.verify(header: "t=\(Self.t),v1=\(Self.sign(Self.body, t: Self.t))", body: Self.body, now: Self.now) == Self.t)
    }

    @Test func oneChangedByteFails() {
        var changed = Self.body
        changed[5] ^= 0x01
        #expect(throws: StripeSignatureVerifier.Failure.mismatch) {
            try verifier.verify(header: "t=\(Self.t),v1=\(Self.sign(Self.body, t: Self.t))", body: changed, now: Self.now)
        }
    }

    @Test func aChangedTimestampFails() {
        #expect(throws: StripeSignatureVerifier.Failure.mismatch) {
            try verifier.verify(header: "t=\(Self.t + 1),v1=\(Self.sign(Self.body, t: Self.t))", body: Self.body, now: Self.now)
        }
    }

    @Test(arguments: [-301, 301] as [Int64])
    func aTimestampOutsideTheToleranceFailsEvenWhenSigned(offset: Int64) {
        let t = Self.t + offset
        #expect(throws: StripeSignatureVerifier.Failure.outsideTolerance) {
            try verifier.verify(header: "t=\(t),v1=\(Self.sign(Self.body, t: t))", body: Self.body, now: Self.now)
        }
    }

    @Test func withinTheToleranceVerifies() throws {
        let t = Self.t - 300
        try verifier.verify(header: "t=\(t),v1=\(Self.sign(Self.body, t: t))", body: Self.body, now: Self.now)
    }

    /// During rotation Stripe signs with both secrets, and Warren holds both.
    @Test func rotatedSecretsAndSeveralSignatures() throws {
        let rotating = StripeSignatureVerifier(secrets: ["whsec_old", "whsec_new"])
        let header = "t=\(Self.t),v1=\(Self.sign(Self.body, t: Self.t, secret: "whsec_unknown")),v1=\(Self.sign(Self.body, t: Self.t, secret: "whsec_new"))"
        try rotating.verify(header: header, body: Self.body, now: Self.now)
        #expect(throws: StripeSignatureVerifier.Failure.mismatch) {
            try verifier.verify(header: "t=\(Self.t),v1=\(Self.sign(Self.body, t: Self.t, secret: "whsec_new"))", body: Self.body, now: Self.now)
        }
    }

    @Test func aV0OnlyHeaderIsRefused() {
        #expect(throws: StripeSignatureVerifier.Failure.noV1Signature) {
            try verifier.verify(header: "t=\(Self.t),v0=\(Self.sign(Self.body, t: Self.t))", body: Self.body, now: Self.now)
        }
    }

    @Test(arguments: [nil, ""] as [String?])
    func aMissingHeaderIsRefused(header: String?) {
        #expect(throws: StripeSignatureVerifier.Failure.missingHeader) { try verifier.verify(header: header, body: Self.body, now: Self.now) }
    }

    @Test(arguments: ["v1=abc", "t=abc,v1=00", "garbage", "t=1,t=2,v1=00"])
    func malformedHeadersAreRefused(header: String) {
        #expect(throws: StripeSignatureVerifier.Failure.malformedHeader) { try verifier.verify(header: header, body: Self.body, now: Self.now) }
    }

    @Test func noSecretVerifiesNothing() {
        let empty = StripeSignatureVerifier(secrets: ["", ""])
        #expect(empty.secrets.isEmpty)
        #expect(throws: StripeSignatureVerifier.Failure.mismatch) {
            try empty.verify(header: "t=\(Self.t),v1=\(Self.sign(Self.body, t: Self.t, secret: ""))", body: Self.body, now: Self.now)
        }
    }
}

/// A signed timestamp is the sender's word: extreme values are refused, never trapped on.
@Suite struct HostileTimestampTests {
    @Test(arguments: [Int64.min, Int64.max, Int64.min + 1, -1])
    func extremeStripeTimestampsAreOutsideTheTolerance(t: Int64) {
        let verifier = StripeSignatureVerifier(secrets: ["whsec_x"])
        #expect(throws: StripeSignatureVerifier.Failure.outsideTolerance) {
            try verifier.verify(header: "t=\(t),v1=\(String(repeating: "ab", count: 32))", body: [], now: Date())
        }
    }

    @Test(arguments: ["\(Int64.min)", "\(Int64.max)", "-1"])
    func extremeStandardWebhooksTimestampsAreOutsideTheTolerance(t: String) throws {
        let verifier = try StandardWebhooksVerifier(secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        #expect(throws: SignatureFailure.outsideTolerance("webhook-timestamp")) {
            try verifier.verify(id: "msg", timestamp: t, signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body: [], now: Date())
        }
    }
}
