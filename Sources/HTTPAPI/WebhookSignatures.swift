import Crypto
import Foundation
import WarrenCore
import Webhooks

/// Why a webhook signature was refused. Said to the sender only as "which header"; the
/// detail goes to nobody (it would help forge one).
public enum SignatureFailure: Error, Equatable, Sendable {
    case missingHeader(String)
    case malformedHeader(String)
    case outsideTolerance(String)
    case mismatch(String)

    /// The header the sender must fix.
    public var header: String {
        switch self {
        case .missingHeader(let name), .malformedHeader(let name), .outsideTolerance(let name), .mismatch(let name): name
        }
    }
}

/// `X-Signature` (header name configurable): the hex HMAC-SHA256 of the raw body, keyed
/// with the secret string as is; optionally prefixed `sha256=` as GitHub does. Any of the
/// secrets may match (rotation); constant-time comparison.
public struct HexHMACVerifier: Sendable {
    public let header: String
    public let secrets: [String]

    public init(header: String = "X-Signature", secrets: [String]) {
        self.header = header
        self.secrets = secrets.filter { !$0.isEmpty }
    }

    public func verify(signature: String?, body: [UInt8]) throws(SignatureFailure) {
        guard var text = signature?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { throw .missingHeader(header) }
        if text.lowercased().hasPrefix("sha256=") { text.removeFirst("sha256=".count) }
        guard let mac = Hex.decode(text), mac.count == SHA256.byteCount else { throw .malformedHeader(header) }
        for secret in secrets where HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: Array(secret.utf8))) {
            return
        }
        throw .mismatch(header)
    }
}

/// Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (unix
/// seconds, within `tolerance` either way) and `webhook-signature`, a space-separated list
/// of `v1,<base64 HMAC-SHA256>` over `"{id}.{timestamp}.{body}"`. Secrets are `whsec_`
/// followed by the base64 key; several may be held during rotation, and other versions
/// than `v1` are ignored.
public struct StandardWebhooksVerifier: Sendable {
    public let keys: [[UInt8]]
    public let tolerance: Int

    /// Throws for a secret that is not `whsec_` + base64 (a configuration error).
    public init(secrets: [String], tolerance: Int = 300) throws(HTTPAPIError) {
        keys = try secrets.filter { !$0.isEmpty }.map { secret throws(HTTPAPIError) in
            guard let key = WebhookSigning.base64Key(secret.hasPrefix("whsec_") ? secret.dropFirst("whsec_".count) : Substring(secret)) else {
                throw HTTPAPIError(description: "a Standard Webhooks secret is whsec_ followed by base64")
            }
            return key
        }
        self.tolerance = tolerance
    }

    /// Returns the `webhook-id` once a signature verifies.
    @discardableResult
    public func verify(id: String?, timestamp: String?, signature: String?, body: [UInt8], now: Date = Date()) throws(SignatureFailure) -> String {
        guard let id, !id.isEmpty else { throw .missingHeader("webhook-id") }
        guard let timestamp, !timestamp.isEmpty else { throw .missingHeader("webhook-timestamp") }
        guard let signature, !signature.isEmpty else { throw .missingHeader("webhook-signature") }
        guard let seconds = Int64(timestamp) else { throw .malformedHeader("webhook-timestamp") }
        guard SignedTimestamp.isWithin(tolerance, of: now, seconds) else { throw .outsideTolerance("webhook-timestamp") }
        let macs = signature.split(separator: " ").compactMap { entry -> [UInt8]? in
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let mac = Data(base64Encoded: String(parts[1])), mac.count == SHA256.byteCount else { return nil }
            return Array(mac)
        }
        guard !macs.isEmpty else { throw .malformedHeader("webhook-signature") }
        let signed = Array("\(id).\(seconds).".utf8) + body
        for key in keys {
            let symmetric = SymmetricKey(data: key)
            for mac in macs where HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: symmetric) {
                return id
            }
        }
        throw .mismatch("webhook-signature")
    }
}
