import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a webhook URL is refused, in one line for the operator or the API caller.
public struct DestinationRefusal: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
}

/// A subscription's URL taken apart: where deliveries go.
public struct Destination: Sendable, Equatable {
    /// As given, with the scheme and host lowercased.
    public var url: String
    /// Without IPv6 brackets, lowercased.
    public var host: String
    public var port: Int
}

/// The SSRF guard: a webhook goes only to a public address over HTTPS.
///
/// `check` looks at the URL's form (http(s), a host, no credentials; plain `http://` only
/// for the hosts allowed it); `resolve` resolves the host and refuses it if *any* of its
/// addresses is loopback, private, link-local (cloud metadata at 169.254.169.254
/// included), CGNAT, unique-local, multicast, unspecified or reserved, also when written
/// as an IPv4-mapped, -compatible or NAT64 IPv6 address. The sender then connects to the
/// checked addresses themselves, the next one when it cannot connect to one (no second
/// lookup that a rebinding DNS could answer differently). `allowPrivate`
/// (`WARREN_WEBHOOK_ALLOW_PRIVATE=1`) lifts every check but the form, for local
/// development and tests only: it lets anyone who can create a subscription make Warren
/// call internal services.
public struct DestinationGuard: Sendable {
    public var allowPrivate: Bool
    /// Hosts that may be sent plain `http://` (lowercased).
    public var plainHTTPHosts: Set<String>

    public init(allowPrivate: Bool = false, plainHTTPHosts: Set<String> = []) {
        self.allowPrivate = allowPrivate
        self.plainHTTPHosts = Set(plainHTTPHosts.map { $0.lowercased() })
    }

    /// `WARREN_WEBHOOK_ALLOW_PRIVATE` (`1`/`true` lifts the guard) and
    /// `WARREN_WEBHOOK_HTTP_HOSTS` (comma-separated hosts allowed plain http).
    public static func from(environment: [String: String]) -> DestinationGuard {
        let allow = ["1", "true", "yes"].contains((environment["WARREN_WEBHOOK_ALLOW_PRIVATE"] ?? "").lowercased())
        let hosts = (environment["WARREN_WEBHOOK_HTTP_HOSTS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return DestinationGuard(allowPrivate: allow, plainHTTPHosts: Set(hosts.filter { !$0.isEmpty }))
    }

    /// The URL's form, without resolving it.
    public func check(_ url: String) throws(DestinationRefusal) -> Destination {
        guard url.utf8.count <= 2048, !url.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }), var components = URLComponents(string: url),
            let scheme = components.scheme?.lowercased()
        else {
            throw DestinationRefusal(description: "'\(url.prefix(200))' is not a URL")
        }
        guard scheme == "https" || scheme == "http" else { throw DestinationRefusal(description: "the URL must be https:// (got \(scheme)://)") }
        guard var host = components.host?.lowercased(), !host.isEmpty else { throw DestinationRefusal(description: "the URL has no host") }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard components.user == nil, components.password == nil else {
            throw DestinationRefusal(description: "the URL must not hold credentials (put a secret in the subscription instead)")
        }
        if scheme == "http", !allowPrivate, !plainHTTPHosts.contains(host) {
            throw DestinationRefusal(description: "the URL must be https:// (plain http only for hosts in WARREN_WEBHOOK_HTTP_HOSTS)")
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw DestinationRefusal(description: "the URL's port \(port) is out of range") }
        if !allowPrivate, let address = IPAddress(host), let refusal = address.refusal {
            throw DestinationRefusal(description: "the URL's host \(host) is \(refusal); webhooks go to public addresses only")
        }
        // The host as the HTTP client will see it: lowercase, so it matches the address
        // pinned for it (the client's DNS override is keyed by the exact host text).
        components.scheme = scheme
        components.host = components.host?.lowercased()
        guard let normalized = components.string else { throw DestinationRefusal(description: "'\(url.prefix(200))' is not a URL") }
        return Destination(url: normalized, host: host, port: port)
    }

    /// The addresses to connect to, in the resolver's order (the sender tries the next
    /// one when it cannot connect): the host itself when it is an address, else its
    /// resolved addresses once every one of them passed. Empty when the guard is lifted
    /// (the HTTP client resolves as usual).
    public func resolve(_ destination: Destination) async throws(DestinationRefusal) -> [String] {
        guard !allowPrivate else { return [] }
        if IPAddress(destination.host) != nil { return [destination.host] }
        let addresses: [IPAddress]
        do {
            addresses = try await Self.lookup(destination.host)
        } catch {
            throw DestinationRefusal(description: "\(destination.host) does not resolve (\(error.description))")
        }
        guard !addresses.isEmpty else { throw DestinationRefusal(description: "\(destination.host) has no address") }
        for address in addresses {
            if let refusal = address.refusal {
                throw DestinationRefusal(description: "\(destination.host) resolves to \(address) (\(refusal)); webhooks go to public addresses only")
            }
        }
        return addresses.map(\.description)
    }

    /// getaddrinfo on a Dispatch thread: it blocks, so never on Swift's cooperative pool.
    static func lookup(_ host: String) async throws(DestinationRefusal) -> [IPAddress] {
        let result: Result<[IPAddress], DestinationRefusal> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                let status = getaddrinfo(host, nil, &hints, &list)
                guard status == 0 else {
                    continuation.resume(returning: .failure(DestinationRefusal(description: String(cString: gai_strerror(status)))))
                    return
                }
                defer { freeaddrinfo(list) }
                var addresses: [IPAddress] = []
                var entry = list
                while let current = entry {
                    if let address = IPAddress(sockaddr: current.pointee.ai_addr), !addresses.contains(address) { addresses.append(address) }
                    entry = current.pointee.ai_next
                }
                continuation.resume(returning: .success(addresses))
            }
        }
        return try result.get()
    }
}

/// An IPv4 or IPv6 address as bytes, and which class of address the guard refuses.
struct IPAddress: Equatable, Sendable, CustomStringConvertible {
    /// 4 or 16 bytes.
    let bytes: [UInt8]

    init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
    }

    init?(sockaddr pointer: UnsafeMutablePointer<sockaddr>?) {
        guard let pointer else { return nil }
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            bytes = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                var raw = address.pointee.sin_addr
                return withUnsafeBytes(of: &raw) { Array($0) }
            }
        case AF_INET6:
            bytes = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                var raw = address.pointee.sin6_addr
                return withUnsafeBytes(of: &raw) { Array($0) }
            }
        default: return nil
        }
    }

    var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What kind of non-public address this is, or nil for a public one.
    var refusal: String? {
        bytes.count == 4 ? Self.refusal(v4: bytes) : Self.refusal(v6: bytes)
    }

    private static func refusal(v4 b: [UInt8]) -> String? {
        switch (b[0], b[1]) {
        case (0, _): "unspecified (0.0.0.0/8)"
        case (10, _): "private (10.0.0.0/8)"
        case (127, _): "loopback (127.0.0.0/8)"
        case (169, 254): "link-local (169.254.0.0/16, cloud metadata)"
        case (172, 16...31): "private (172.16.0.0/12)"
        case (192, 168): "private (192.168.0.0/16)"
        case (100, 64...127): "shared CGNAT space (100.64.0.0/10)"
        case (192, 0) where b[2] == 0: "IETF protocol assignments (192.0.0.0/24)"
        case (198, 18...19): "benchmarking space (198.18.0.0/15)"
        case (224...239, _): "multicast (224.0.0.0/4)"
        case (240...255, _): "reserved or broadcast (240.0.0.0/4)"
        default: nil
        }
    }

    private static func refusal(v6 b: [UInt8]) -> String? {
        let prefix96Zero = b[0..<10].allSatisfy { $0 == 0 }
        if b.allSatisfy({ $0 == 0 }) { return "unspecified (::)" }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "loopback (::1)" }
        // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d carry an
        // IPv4 address; NAT64 64:ff9b::a.b.c.d reaches one.
        if prefix96Zero && ((b[10] == 0xFF && b[11] == 0xFF) || (b[10] == 0 && b[11] == 0)) {
            return refusal(v4: Array(b[12..<16])).map { "\($0) as IPv6" }
        }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy({ $0 == 0 }) {
            return refusal(v4: Array(b[12..<16])).map { "\($0) through NAT64" }
        }
        if b[0] == 0xFE && (b[1] & 0xC0) == 0x80 { return "link-local (fe80::/10)" }
        if b[0] == 0xFE && (b[1] & 0xC0) == 0xC0 { return "site-local (fec0::/10)" }
        if (b[0] & 0xFE) == 0xFC { return "unique local (fc00::/7)" }
        if b[0] == 0xFF { return "multicast (ff00::/8)" }
        return nil
    }
}
