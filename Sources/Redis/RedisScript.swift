import Crypto

/// A Lua script run with `EVALSHA` (its SHA-1), sent whole with `EVAL` only when the
/// server does not know it yet (`NOSCRIPT`, e.g. after a restart or `SCRIPT FLUSH`).
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]], as: UTF8.self)
        }.joined()
    }
}
