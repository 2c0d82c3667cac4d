import Foundation
import Testing
@testable import Webhooks

@Suite struct SecretSealerTests {
    static let keyA = [UInt8](repeating: 0xA1, count: 32)
    static let keyB = [UInt8](repeating: 0xB2, count: 32)
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test func aSealedSecretOpensOnlyForItsSubscriptionAndKey() throws {
        let sealer = SecretSealer(keys: [Self.keyA])
        let stored = sealer.seal(Self.secret, subscription: "wh_1")
        #expect(stored.hasPrefix("sealed:v1:") && !stored.contains(Self.secret))
        #expect(sealer.seal(Self.secret, subscription: "wh_1") != stored, "a fresh nonce each time")
        #expect(try sealer.open(stored, subscription: "wh_1") == Self.secret)
        #expect(throws: WebhookError.self, "copied to another subscription") { try sealer.open(stored, subscription: "wh_2") }
        #expect(throws: WebhookError.self, "another key") { try SecretSealer(keys: [Self.keyB]).open(stored, subscription: "wh_1") }
        // One byte of the ciphertext changed.
        var bytes = Array(stored.utf8)
        let last = bytes.count - 3
        bytes[last] = bytes[last] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: WebhookError.self, "tampered") { try sealer.open(String(decoding: bytes, as: UTF8.self), subscription: "wh_1") }
    }

    @Test func theErrorSaysWhyASecretCannotBeRead() throws {
        let stored = SecretSealer(keys: [Self.keyA]).seal(Self.secret, subscription: "wh_1")
        let keyID = String(stored.dropFirst("sealed:v1:".count).prefix { $0 != ":" })
        #expect(keyID.count == 16)
        do {
            _ = try SecretSealer.clear.open(stored, subscription: "wh_1")
            Issue.record("opened without a key")
        } catch {
            #expect(error.description.contains("WARREN_SECRETS_KEY is not set") && error.description.contains("wh_1"), "\(error)")
        }
        do {
            _ = try SecretSealer(keys: [Self.keyB]).open(stored, subscription: "wh_1")
            Issue.record("opened with another key")
        } catch {
            #expect(error.description.contains("key \(keyID), which is not in WARREN_SECRETS_KEY"), "\(error)")
        }
    }

    @Test func withoutAKeySecretsAreStoredAsGivenAndClearOnesAlwaysRead() throws {
        #expect(SecretSealer.clear.seal(Self.secret, subscription: "wh_1") == Self.secret)
        #expect(try SecretSealer(keys: [Self.keyA]).open(Self.secret, subscription: "wh_1") == Self.secret, "stored before a key was set")
        #expect(!SecretSealer.clear.seals)
    }

    @Test func duringAKeyRotationTheNewKeySealsAndBothOpen() throws {
        let old = SecretSealer(keys: [Self.keyA]).seal(Self.secret, subscription: "wh_1")
        let rotating = SecretSealer(keys: [Self.keyB, Self.keyA])
        #expect(try rotating.open(old, subscription: "wh_1") == Self.secret)
        #expect(!rotating.isSealedUnderCurrentKey(old))
        let new = rotating.seal(Self.secret, subscription: "wh_1")
        #expect(rotating.isSealedUnderCurrentKey(new))
        #expect(try SecretSealer(keys: [Self.keyB]).open(new, subscription: "wh_1") == Self.secret)
    }

    @Test func theKeyMustBeTheBase64Of32Bytes() throws {
        #expect(!(try SecretSealer.from(environment: [:]).seals))
        #expect(!(try SecretSealer.from(environment: ["WARREN_SECRETS_KEY": " "]).seals))
        let a = Data(Self.keyA).base64EncodedString(), b = Data(Self.keyB).base64EncodedString()
        #expect(try SecretSealer.from(environment: ["WARREN_SECRETS_KEY": "\(b), \(a)"]).keys.count == 2)
        for bad in ["not base64!", Data(repeating: 1, count: 16).base64EncodedString(), "\(a),"] {
            do {
                _ = try SecretSealer.from(environment: ["WARREN_SECRETS_KEY": bad])
                Issue.record("accepted \(bad)")
            } catch {
                #expect(error.description.contains("base64 of 32 bytes") && error.description.contains("openssl rand -base64 32"), "\(error)")
            }
        }
    }
}
