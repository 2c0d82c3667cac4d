/// The one error type of the `Redis` module. Its text never contains a password or a
/// command's arguments (only the command's name).
public struct RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// `WARREN_REDIS_URL` cannot be used.
        case configuration
        /// No connection could be opened (refused, unresolvable, AUTH refused).
        case connectionFailed
        /// The connection died during the call; the command may or may not have run.
        case connectionLost
        /// The server did not answer within the command (or connect) timeout.
        case timeout
        /// Redis is in an outage: the call was not sent (the client fails fast between probes).
        case unavailable
        /// The server answered with an error (`ERR …`, `NOSCRIPT …`, `WRONGTYPE …`).
        case server
        /// The server answered that it cannot serve now (`LOADING`, `BUSY`, `READONLY`,
        /// `MASTERDOWN`, `NOAUTH`, `OOM`, `MISCONF`, `TRYAGAIN`): an outage like a lost connection.
        case serverUnavailable
        /// The reply was not what the caller expects.
        case unexpectedReply
        /// The client was closed by its owner.
        case closed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// True when Redis could not be reached or did not answer: the caller falls back.
    public var isOutage: Bool {
        switch kind {
        case .connectionFailed, .connectionLost, .timeout, .unavailable, .serverUnavailable, .closed: true
        case .configuration, .server, .unexpectedReply: false
        }
    }

    public var description: String { "redis \(kind.rawValue): \(message)" }
}
