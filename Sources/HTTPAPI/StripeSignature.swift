import Crypto
import Foundation
import WarrenCore

/// Verifies a `Stripe-Signature` header as Stripe documents it: `t=<unix seconds>` and one
/// or more `v1=<hex HMAC-SHA256>` of `"{t}.{raw body}"`, keyed with the endpoint secret
/// string as is. Other schemes (`v0`) are ignored. Several secrets are tried (rotation);
/// the comparison is constant-time; the timestamp must be within `tolerance` of now,
/// in either direction.
public struct StripeSignatureVerifier: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case missingHeader
        case malformedHeader
        case noV1Signature
        case outsideTolerance
        case mismatch
    }

    public let secrets: [String]
    public let tolerance: Int

    public init(secrets: [String], tolerance: Int = 300) {
        self.secrets = secrets.filter { !$0.isEmpty }
        self.tolerance = tolerance
    }

    /// Returns the signed timestamp when one `v1` signature matches one secret.
    @discardableResult
    public func verify(header: String?, body: [UInt8], now: Date = Date()) throws(Failure) -> Int64 {
        guard let header, !header.isEmpty else { throw .missingHeader }
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for part in header.split(separator: ",") {
            guard let equals = part.firstIndex(of: "=") else { throw .malformedHeader }
            let key = part[..<equals].trimmingCharacters(in: .whitespaces)
            let value = part[part.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "t":
                guard timestamp == nil, let seconds = Int64(value) else { throw .malformedHeader }
                timestamp = seconds
            case "v1":
                // A v1 that is not 64 hex digits can never match: skip it like an unknown scheme.
                if let bytes = Hex.decode(value), bytes.count == SHA256.byteCount { signatures.append(bytes) }
            default:
                continue
            }
        }
        guard let timestamp else { throw .malformedHeader }
        guard !signatures.isEmpty else { throw .noV1Signature }
        guard SignedTimestamp.isWithin(tolerance, of: now, timestamp) else { throw .outsideTolerance }
        let signed = Array("\(timestamp).".utf8) + body
        for secret in secrets {
            let key = SymmetricKey(data: Array(secret.utf8))
            for signature in signatures where HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) {
                return timestamp
            }
        }
        throw .mismatch
    }
}

/// A timestamp a sender signed is the sender's word: any 64-bit value, compared without
/// arithmetic that could overflow (and trap).
enum SignedTimestamp {
    static func isWithin(_ tolerance: Int, of now: Date, _ timestamp: Int64) -> Bool {
        let current = Int64(now.timeIntervalSince1970.rounded(.down))
        let (difference, overflow) = current.subtractingReportingOverflow(timestamp)
        return !overflow && difference != .min && abs(difference) <= Int64(tolerance)
    }
}
