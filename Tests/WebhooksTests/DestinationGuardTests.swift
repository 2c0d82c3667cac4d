import Testing
@testable import Webhooks

@Suite struct DestinationGuardTests {
    let guarded = DestinationGuard()

    @Test(arguments: [
        ("127.0.0.1", "loopback"), ("127.1.2.3", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
        ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("100.64.0.1", "CGNAT"), ("100.127.255.255", "CGNAT"),
        ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("255.255.255.255", "broadcast"),
        ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"),
        ("ff02::1", "multicast"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ])
    func refusesEveryNonPublicClass(address: String, kind: String) throws {
        let refusal = try #require(IPAddress(address)?.refusal, "\(address) must be refused")
        #expect(refusal.contains(kind), "\(address): \(refusal)")
        let host = address.contains(":") ? "[\(address)]" : address
        #expect(throws: DestinationRefusal.self) { try guarded.check("https://\(host)/hook") }
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
    func allowsPublicAddresses(address: String) throws {
        #expect(IPAddress(address)?.refusal == nil, "\(address)")
        let host = address.contains(":") ? "[\(address)]" : address
        let destination = try guarded.check("https://\(host):8443/hook")
        #expect(destination.host == address && destination.port == 8443)
    }

    @Test func aNameThatResolvesToLoopbackIsRefused() async {
        let destination = Destination(url: "https://localhost/hook", host: "localhost", port: 443)
        await #expect(throws: DestinationRefusal.self) { try await guarded.resolve(destination) }
        // The form alone is fine: it is the resolved address that is refused.
        #expect(throws: Never.self) { try guarded.check("https://localhost/hook") }
    }

    @Test func anAddressIsConnectedToAsChecked() async throws {
        let destination = try guarded.check("https://8.8.8.8/hook")
        #expect(try await guarded.resolve(destination) == ["8.8.8.8"], "no lookup for an address: nothing to rebind")
    }

    /// The HTTP client's pinned address is keyed by the URL's host text: an uppercase host
    /// would miss it and be resolved again (rebinding). The checked URL is lowercased.
    @Test func theCheckedURLHasItsSchemeAndHostLowercased() throws {
        let destination = try guarded.check("HTTPS://Hooks.EXAMPLE.com:8443/Path?Q=1")
        #expect(destination.url == "https://hooks.example.com:8443/Path?Q=1")
        #expect(destination.host == "hooks.example.com")
        #expect(throws: DestinationRefusal.self) { try guarded.check("https://example.com/a\u{0}b") }
    }

    @Test func httpsIsRequiredButForAllowedHosts() throws {
        #expect(throws: DestinationRefusal.self) { try guarded.check("http://example.com/hook") }
        #expect(throws: DestinationRefusal.self) { try guarded.check("ftp://example.com/hook") }
        #expect(throws: DestinationRefusal.self) { try guarded.check("https://user:pw@example.com/hook") }
        #expect(throws: DestinationRefusal.self) { try guarded.check("not a url") }
        let allowing = DestinationGuard.from(environment: ["WARREN_WEBHOOK_HTTP_HOSTS": "hooks.internal.example, other.example"])
        #expect(try allowing.check("http://hooks.internal.example:8080/x").port == 8080)
        #expect(throws: DestinationRefusal.self) { try allowing.check("http://example.com/hook") }
    }

    @Test func allowPrivateLiftsTheGuardForDevelopment() async throws {
        let lifted = DestinationGuard.from(environment: ["WARREN_WEBHOOK_ALLOW_PRIVATE": "1"])
        let destination = try lifted.check("http://127.0.0.1:9000/hook")
        #expect(try await lifted.resolve(destination).isEmpty)
        #expect(!DestinationGuard.from(environment: ["WARREN_WEBHOOK_ALLOW_PRIVATE": "0"]).allowPrivate)
    }
}
