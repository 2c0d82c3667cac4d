import Foundation

/// Where and how to reach Redis, from `WARREN_REDIS_URL`:
/// `redis://[[user]:password@]host[:port][/database]`.
///
/// `rediss://` (TLS) is refused: Debian 12's hiredis (0.14) has no TLS support.
/// The description shows the password as `***`.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// Opening a connection, and each command's reply, must take at most this long; a
    /// slow Redis counts as an outage (callers fall back rather than wait).
    public var timeout: Duration = .seconds(1)
    /// Connections of the pool; each is one OS thread with a blocking hiredis context.
    public var connections: Int = 4
    /// During an outage, how often one command (or the client's own PING) tries again;
    /// the others fail at once.
    public var probeInterval: Duration = .seconds(1)

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    public init(url text: String) throws(RedisError) {
        // The URL itself is never repeated in errors: it may hold the password.
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw RedisError(.configuration, "WARREN_REDIS_URL is not a URL (expected redis://[:password@]host[:port][/database])")
        }
        if scheme == "rediss" {
            throw RedisError(
                .configuration,
                "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14 has no TLS; use redis:// on a private network or through a TLS tunnel")
        }
        guard scheme == "redis" else {
            throw RedisError(.configuration, "WARREN_REDIS_URL must start with redis:// (got \(scheme)://)")
        }
        guard var host = components.percentEncodedHost, !host.isEmpty else {
            throw RedisError(.configuration, "WARREN_REDIS_URL names no host (expected redis://host:6379)")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw RedisError(.configuration, "WARREN_REDIS_URL: port \(port) is out of range") }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var database = 0
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                // Not repeated: a password with an unencoded '/' would end up in the path.
                throw RedisError(.configuration, "WARREN_REDIS_URL: the path must be a database number (/0, /1, …); percent-encode '/' in a password")
            }
            database = number
        }
        if let items = components.queryItems, !items.isEmpty {
            throw RedisError(.configuration, "WARREN_REDIS_URL: query options are not supported (\(items.map(\.name).joined(separator: ", ")))")
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        let password = components.password.flatMap { $0.isEmpty ? nil : $0 }
        if user != nil && password == nil {
            throw RedisError(.configuration, "WARREN_REDIS_URL names a user without a password (redis://user:password@host)")
        }
        self.init(host: host, port: port, username: user, password: password, database: database)
    }

    public var description: String {
        let credentials = password == nil ? "" : "\(username ?? ""):***@"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials)\(shownHost):\(port)/\(database)"
    }
}
