import Foundation

/// Where and how to connect: one or more broker endpoints (tried in turn, for failover)
/// and the client's timeouts and reconnect policy.
public struct AMQPConfiguration: Sendable {
    public var endpoints: [AMQPEndpoint]
    /// Seconds between heartbeats we ask the broker for; 0 disables them.
    public var heartbeat: Int
    /// Shown in the management UI and `rabbitmqctl list_connections`.
    public var connectionName: String
    /// Default time a publish may wait for its confirm (including while blocked or reconnecting).
    public var publishTimeout: Duration
    /// Time a synchronous broker method (declare, bind, consume, …) may take.
    public var rpcTimeout: Duration
    public var reconnect: ReconnectPolicy
    /// Whether starting may go on without a broker. False (the default): `run()` and
    /// `connect` throw when no endpoint accepts the first connection, so a process that
    /// cannot work without the broker stops with the reason. True: a first connection
    /// that fails for the network's sake (`connectionFailed`: refused, unreachable, timed
    /// out, broker still booting) is retried with `reconnect` like a lost one: `run()`
    /// returns to its caller's service group at once, the state is `.reconnecting`, and
    /// publishes and methods wait (up to their timeouts) as during any outage. Refused
    /// credentials, TLS and configuration errors still stop it: no retry fixes them.
    /// For a process with something to say meanwhile (`warren serve`: 503 and `/readyz`).
    public var startsWithoutBroker = false

    public init(
        endpoints: [AMQPEndpoint],
        heartbeat: Int? = nil,
        connectionName: String = "warren",
        publishTimeout: Duration = .seconds(30),
        rpcTimeout: Duration = .seconds(30),
        reconnect: ReconnectPolicy = ReconnectPolicy()
    ) {
        self.endpoints = endpoints
        self.heartbeat = heartbeat ?? endpoints.first?.heartbeat ?? 30
        self.connectionName = connectionName
        self.publishTimeout = publishTimeout
        self.rpcTimeout = rpcTimeout
        self.reconnect = reconnect
    }

    /// Parses `WARREN_AMQP_URL`-style input: one or more comma-separated URLs.
    public init(urls: String, connectionName: String = "warren") throws(AMQPError) {
        let parts = urls.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { throw AMQPError(.invalidConfiguration, "no AMQP URL given") }
        var endpoints: [AMQPEndpoint] = []
        for part in parts { endpoints.append(try AMQPEndpoint(url: part)) }
        self.init(endpoints: endpoints, connectionName: connectionName)
    }
}

/// Capped exponential backoff with jitter between reconnect attempts.
public struct ReconnectPolicy: Sendable {
    public var initialDelay: Duration
    public var maxDelay: Duration

    public init(initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5)) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
    }

    /// The delay before attempt `attempt` (0-based): `initial * 2^attempt`, capped, then
    /// scaled by a random factor in 0.5...1 so that many clients do not reconnect in step.
    public func delay(attempt: Int) -> Duration {
        let capped = min(maxDelay, initialDelay * (1 << min(attempt, 20)))
        return capped * Double.random(in: 0.5...1.0)
    }
}

/// One broker address as an `amqp://` or `amqps://` URL describes it.
public struct AMQPEndpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String
    public var tls: TLS?
    /// `heartbeat` from the URL's query, if given.
    public var heartbeat: Int?
    /// `connection_timeout` (milliseconds in the URL, as RabbitMQ's URI spec has it).
    public var connectTimeout: Duration

    public struct TLS: Sendable, Equatable {
        /// PEM file of the CA that signed the broker's certificate (`cacertfile`).
        public var caFile: String?
        /// Client certificate and key (`certfile`, `keyfile`) for mutual TLS.
        public var certFile: String?
        public var keyFile: String?
        /// `verify=verify_peer` (default) or `verify=verify_none`.
        public var verifyPeer: Bool = true
        /// `verify_hostname=false` turns off the hostname check alone.
        public var verifyHostname: Bool = true

        /// The CA bundle that verifies the broker when no `cacertfile` is given (rabbitmq-c
        /// 0.11 loads none by itself): `SSL_CERT_FILE`, else the system's bundle (Debian's
        /// `ca-certificates`, RHEL's, Alpine's). Nil when there is none.
        public static func systemCAFile(
            environment: [String: String], exists: (String) -> Bool = { access($0, R_OK) == 0 }
        ) -> String? {
            if let file = environment["SSL_CERT_FILE"], !file.isEmpty { return file }
            return ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].first(where: exists)
        }
    }

    public init(url: String) throws(AMQPError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidConfiguration, "not a URL: \(Self.redacted(url))")
        }
        switch scheme {
        case "amqp": tls = nil
        case "amqps": tls = TLS()
        default: throw AMQPError(.invalidConfiguration, "unsupported scheme '\(scheme)' (use amqp:// or amqps://)")
        }
        // Without `//` there is no authority, and what looks like one lands in the path (and
        // would be echoed in errors below, password included).
        guard components.host != nil else {
            throw AMQPError(.invalidConfiguration, "not an AMQP URL: \(scheme): must be followed by // (amqp://[user:password@]host[:port][/vhost])")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? (tls == nil ? 5672 : 5671)
        guard (1...65535).contains(port) else { throw AMQPError(.invalidConfiguration, "port \(port) out of range") }
        user = components.user.flatMap { $0.removingPercentEncoding } ?? "guest"
        password = components.password.flatMap { $0.removingPercentEncoding } ?? "guest"
        // The vhost is the path without its leading '/', percent-decoded: "/%2f" is "/",
        // an absent path is the default vhost "/", and "/" alone is the empty vhost name.
        let path = components.percentEncodedPath
        if path.isEmpty {
            vhost = "/"
        } else {
            let name = String(path.dropFirst())
            guard !name.contains("/") else {
                // Not echoed: a mangled URL (two run together) can put a password here.
                throw AMQPError(.invalidConfiguration, "the vhost (the path after the host) holds a '/': percent-encode it (%2F for '/')")
            }
            vhost = name.removingPercentEncoding ?? name
        }
        connectTimeout = .seconds(10)
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "heartbeat":
                guard let seconds = Int(value), seconds >= 0 else { throw Self.badQuery(item.name, value) }
                heartbeat = seconds
            case "connection_timeout":
                guard let ms = Int(value), ms > 0 else { throw Self.badQuery(item.name, value) }
                connectTimeout = .milliseconds(ms)
            case "cacertfile": try requireTLS(item.name); tls?.caFile = value
            case "certfile": try requireTLS(item.name); tls?.certFile = value
            case "keyfile": try requireTLS(item.name); tls?.keyFile = value
            case "verify":
                try requireTLS(item.name)
                switch value {
                case "verify_peer": tls?.verifyPeer = true
                case "verify_none": tls?.verifyPeer = false
                default: throw Self.badQuery(item.name, value)
                }
            case "verify_hostname":
                try requireTLS(item.name)
                guard let flag = Bool(value) else { throw Self.badQuery(item.name, value) }
                tls?.verifyHostname = flag
            case "server_name_indication":
                // rabbitmq-c 0.11 always sends the URL's host as SNI and cannot be told
                // otherwise. This once turned hostname verification off as a side effect,
                // which is a different thing: refuse it rather than weaken TLS silently.
                throw AMQPError(
                    .invalidConfiguration,
                    "URL parameter 'server_name_indication' is not supported (rabbitmq-c sends the URL's host); use verify_hostname=false to skip the hostname check")
            default:
                // Named only when it looks like a parameter name: the query of a mangled URL can hold anything.
                let plain = item.name.count <= 32 && item.name.allSatisfy { $0.isASCII && ($0.isLetter || $0 == "_") }
                throw AMQPError(.invalidConfiguration, plain ? "unknown URL parameter '\(item.name)'" : "an unknown URL parameter")
            }
        }
        if let tls, (tls.certFile == nil) != (tls.keyFile == nil) {
            throw AMQPError(.invalidConfiguration, "certfile and keyfile must be given together")
        }
    }

    private func requireTLS(_ name: String) throws(AMQPError) {
        if tls == nil { throw AMQPError(.invalidConfiguration, "URL parameter '\(name)' needs amqps://") }
    }

    private static func badQuery(_ name: String, _ value: String) -> AMQPError {
        // Not echoed when it could hold credentials (two URLs run together without a comma).
        let plain = value.count <= 200 && !value.contains("@") && !value.contains("://")
        return AMQPError(.invalidConfiguration, plain ? "invalid value '\(value)' for URL parameter '\(name)'" : "invalid value for URL parameter '\(name)'")
    }

    /// The URL with its password hidden, for logs and errors.
    public var redactedDescription: String {
        "\(tls == nil ? "amqp" : "amqps")://\(user)@\(host):\(port)/\(vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost)"
    }

    static func redacted(_ url: String) -> String {
        // Only a URL with a scheme and a host has its parts told apart; anything else (text
        // Foundation reads as a relative path) goes through the manual masking below.
        if var components = URLComponents(string: url), components.scheme != nil, components.host != nil {
            guard components.password != nil else { return url }
            components.password = "***"
            return components.string ?? "<unparseable URL>"
        }
        // Not a URL, so its parts cannot be told apart reliably: whatever stands between
        // the scheme and the last '@' may hold a password, and only the user name before
        // its first ':' is shown. Without an '@', what follows a ':' in the authority may
        // be a password whose '@' was forgotten.
        guard let scheme = url.range(of: "://"), scheme.lowerBound > url.startIndex, url[..<scheme.lowerBound].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return url.contains(":") || url.contains("@") ? "<unparseable URL>" : url }
        if let at = url.lastIndex(of: "@") {
            guard scheme.upperBound <= at else { return "<unparseable URL>" }
            let user = url[scheme.upperBound..<at].prefix { $0 != ":" }
            return url[..<scheme.upperBound] + user + ":***" + url[at...]
        }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        guard let colon = rest[..<authorityEnd].firstIndex(of: ":") else { return url }
        return url[..<colon] + ":***" + rest[authorityEnd...]
    }
}
