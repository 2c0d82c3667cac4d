import Crypto
import Foundation
import WarrenCore

/// How an outbound webhook is signed, so a subscriber can verify it:
///
/// - Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
///   `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
///   `"{id}.{timestamp}.{body}"`, one per active secret (two while a rotation overlaps).
///   A `whsec_` secret is keyed with its base64-decoded bytes, any other with its UTF-8 bytes.
/// - `X-Signature`: the hex HMAC-SHA256 of the raw body keyed with the current secret's
///   string as given, what a plain shared-secret verifier checks.
public enum WebhookSigning {
    /// `whsec_` and the base64 of 32 random bytes: what a subscription gets when it names none.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return "whsec_" + Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
    }

    /// The HMAC key of a secret, or nil for a `whsec_` secret that is not base64.
    public static func key(for secret: String) -> [UInt8]? {
        guard secret.hasPrefix("whsec_") else { return Array(secret.utf8) }
        return base64Key(secret.dropFirst("whsec_".count))
    }

    /// The bytes of a base64 key (padding optional, as Standard Webhooks secrets are
    /// written), or nil when it is not base64 or empty.
    public static func base64Key(_ encoded: some StringProtocol) -> [UInt8]? {
        let padded = String(encoded) + String(repeating: "=", count: (4 - encoded.count % 4) % 4)
        guard let key = Data(base64Encoded: padded), !key.isEmpty else { return nil }
        return Array(key)
    }

    /// The `webhook-id` of one event for one subscription: the same on every retry, so a
    /// subscriber can drop what it already processed, and different per subscription.
    public static func webhookID(subscription: String, event: String) -> String {
        let digest = SHA256.hash(data: Array("\(subscription)\n\(event)".utf8))
        return "msg_" + Hex.encode(Array(digest.prefix(16)))
    }

    /// The signature headers of one attempt. `secrets` is current first; each is
    /// checked by `key(for:)` when the subscription is stored.
    public static func headers(webhookID: String, timestamp: Int64, body: [UInt8], secrets: [String]) -> [(String, String)] {
        let signed = Array("\(webhookID).\(timestamp).".utf8) + body
        let signatures = secrets.compactMap { secret -> String? in
            guard let key = key(for: secret) else { return nil }
            return "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: key))).base64EncodedString()
        }
        var headers = [
            ("webhook-id", webhookID), ("webhook-timestamp", "\(timestamp)"), ("webhook-signature", signatures.joined(separator: " ")),
        ]
        if let current = secrets.first {
            let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(current.utf8)))
            headers.append(("X-Signature", Hex.encode(Array(mac))))
        }
        return headers
    }
}
