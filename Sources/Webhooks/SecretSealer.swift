import Crypto
import Foundation
import WarrenCore

/// Webhook subscription secrets at rest: sealed with AES-256-GCM under a key from
/// `WARREN_SECRETS_KEY` (base64 of 32 bytes; several, comma-separated, while keys
/// rotate: the first seals, every one opens). A secret must be readable to sign, so it
/// cannot be hashed; sealed, a copy of the database alone does not give it away.
///
/// Stored as `sealed:v1:<key id>:<base64 of nonce, ciphertext and tag>`. The key id is
/// the first 8 bytes of the key's SHA-256 in hex, so the right key is found and a wrong
/// one named. The subscription's id is authenticated with it: a sealed secret copied
/// to another subscription does not open. Without a key, secrets are stored as given
/// (as before this existed), and a stored secret without the prefix is read as is.
public struct SecretSealer: Sendable {
    static let prefix = "sealed:v1:"

    struct Key: Sendable {
        let id: String
        let key: SymmetricKey
    }

    let keys: [Key]

    /// Secrets are stored as given.
    public static let clear = SecretSealer(keys: [])

    /// `keys`: 32 bytes each; the first seals.
    public init(keys: [[UInt8]]) {
        self.keys = keys.map { Key(id: Hex.encode(Array(SHA256.hash(data: $0).prefix(8))), key: SymmetricKey(data: $0)) }
    }

    public var seals: Bool { !keys.isEmpty }

    /// `WARREN_SECRETS_KEY`: unset or empty means `clear`.
    public static func from(environment: [String: String]) throws(WebhookError) -> SecretSealer {
        let text = environment["WARREN_SECRETS_KEY"]?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !text.isEmpty else { return .clear }
        var keys: [[UInt8]] = []
        for (index, part) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let encoded = part.trimmingCharacters(in: .whitespaces)
            guard let key = Data(base64Encoded: encoded), key.count == 32 else {
                throw .invalid(
                    "WARREN_SECRETS_KEY",
                    "WARREN_SECRETS_KEY key \(index + 1) must be the base64 of 32 bytes (make one with: openssl rand -base64 32)")
            }
            keys.append(Array(key))
        }
        return SecretSealer(keys: keys)
    }

    /// The secret as it is stored for subscription `id`.
    public func seal(_ secret: String, subscription id: String) -> String {
        guard let current = keys.first else { return secret }
        // Sealing only fails for an invalid key or nonce, neither of which can be built here.
        let box = try! AES.GCM.seal(Array(secret.utf8), using: current.key, authenticating: Array(id.utf8))
        return Self.prefix + current.id + ":" + box.combined!.base64EncodedString()
    }

    /// Whether `stored` is sealed under the current key already (never without a key).
    func isSealedUnderCurrentKey(_ stored: String) -> Bool {
        guard let current = keys.first else { return false }
        return stored.hasPrefix(Self.prefix + current.id + ":")
    }

    /// The secret `stored` holds for subscription `id`.
    public func open(_ stored: String, subscription id: String) throws(WebhookError) -> String {
        guard stored.hasPrefix(Self.prefix) else { return stored }
        let rest = stored.dropFirst(Self.prefix.count)
        guard let colon = rest.firstIndex(of: ":") else { throw Self.unreadable(id, "its sealed form is damaged") }
        let keyID = String(rest[..<colon])
        guard !keys.isEmpty else {
            throw Self.unreadable(id, "it is sealed (key \(keyID)) and WARREN_SECRETS_KEY is not set")
        }
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw Self.unreadable(id, "it is sealed under key \(keyID), which is not in WARREN_SECRETS_KEY")
        }
        guard let combined = Data(base64Encoded: String(rest[rest.index(after: colon)...])),
            let box = try? AES.GCM.SealedBox(combined: combined),
            let opened = try? AES.GCM.open(box, using: key.key, authenticating: Array(id.utf8))
        else {
            throw Self.unreadable(id, "it does not open under key \(keyID) (damaged, or sealed for another subscription)")
        }
        return String(decoding: opened, as: UTF8.self)
    }

    private static func unreadable(_ id: String, _ why: String) -> WebhookError {
        .invalid("secret", "the secret of webhook subscription '\(id)' cannot be read: \(why)")
    }
}

/// Opens the secrets of the deliveries of one claim or hand-off, each subscription's once.
struct SecretOpener {
    let sealer: SecretSealer
    private var opened: [String: Result<String, WebhookError>] = [:]

    init(_ sealer: SecretSealer) {
        self.sealer = sealer
    }

    /// The secrets that sign (current first) and, when the current one cannot be opened,
    /// why: the attempt then fails with that reason instead of going out unsigned. A
    /// previous secret that cannot be opened no longer signs (a rotation replaced one
    /// sealed under a lost key); the current one still does.
    mutating func open(current: String, previous: String?, subscription: String) -> (secrets: [String], unreadable: String?) {
        var secrets: [String] = []
        var unreadable: String?
        switch open(current, subscription) {
        case .success(let secret): secrets = [secret]
        case .failure(let error): unreadable = error.description
        }
        if let previous, case .success(let secret) = open(previous, subscription) { secrets.append(secret) }
        return (secrets, unreadable)
    }

    private mutating func open(_ stored: String, _ subscription: String) -> Result<String, WebhookError> {
        let key = subscription + "\n" + stored
        if let known = opened[key] { return known }
        let result = Result { () throws(WebhookError) in try sealer.open(stored, subscription: subscription) }
        opened[key] = result
        return result
    }
}
