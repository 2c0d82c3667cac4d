@testable import AMQP
import Testing

@Suite struct URLParsingTests {
    @Test func defaultsForAPlainURL() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://localhost")
        #expect(endpoint.host == "localhost")
        #expect(endpoint.port == 5672)
        #expect(endpoint.user == "guest")
        #expect(endpoint.password == "guest")
        #expect(endpoint.vhost == "/")
        #expect(endpoint.tls == nil)
    }

    @Test func everyPartIsRead() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://us%40er:p%3Ass@broker.example:5673/prod%2Fevents?heartbeat=5&connection_timeout=2500")
        #expect(endpoint.user == "us@er")
        #expect(endpoint.password == "p:ss")
        #expect(endpoint.host == "broker.example")
        #expect(endpoint.port == 5673)
        #expect(endpoint.vhost == "prod/events")
        #expect(endpoint.heartbeat == 5)
        #expect(endpoint.connectTimeout == .milliseconds(2500))
    }

    @Test(arguments: [("amqp://h/%2f", "/"), ("amqp://h/", ""), ("amqp://h", "/"), ("amqp://h/orders", "orders")])
    func vhostRules(url: String, vhost: String) throws {
        #expect(try AMQPEndpoint(url: url).vhost == vhost)
    }

    @Test func amqpsReadsTLSOptions() throws {
        let endpoint = try AMQPEndpoint(url: "amqps://h?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&verify=verify_peer&verify_hostname=false")
        #expect(endpoint.port == 5671)
        #expect(endpoint.tls?.caFile == "/ca.pem")
        #expect(endpoint.tls?.certFile == "/c.pem")
        #expect(endpoint.tls?.keyFile == "/k.pem")
        #expect(endpoint.tls?.verifyPeer == true)
        #expect(endpoint.tls?.verifyHostname == false)
        #expect(try AMQPEndpoint(url: "amqps://h?verify=verify_none").tls?.verifyPeer == false)
    }

    @Test(arguments: [
        "http://h", "amqp://h?heartbeat=-1", "amqp://h?heartbeat=x", "amqp://h?cacertfile=/ca.pem",
        "amqp://h?bogus=1", "amqps://h?certfile=/c.pem", "amqp://h/a/b", "amqps://h?verify=maybe", "amqp://h:0",
    ])
    func badURLsAreRefusedClearly(url: String) throws {
        let error = try #require(throws: AMQPError.self) { try AMQPEndpoint(url: url) }
        #expect(error.code == .invalidConfiguration)
    }

    @Test func severalURLsForFailover() throws {
        let configuration = try AMQPConfiguration(urls: "amqp://a:1/%2f?heartbeat=7, amqps://b")
        #expect(configuration.endpoints.map(\.host) == ["a", "b"])
        #expect(configuration.heartbeat == 7)
        #expect(throws: AMQPError.self) { try AMQPConfiguration(urls: " , ") }
    }

    @Test func passwordsNeverAppearInDescriptions() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://user:hunter2@h/%2f")
        #expect(!endpoint.redactedDescription.contains("hunter2"))
        let error = try #require(throws: AMQPError.self) { try AMQPEndpoint(url: "ftp://user:hunter2@h") }
        #expect(!error.description.contains("hunter2"))
    }

    /// amqps:// without cacertfile verifies against SSL_CERT_FILE or the system bundle
    /// (rabbitmq-c 0.11 loads no CA by itself, so it used to fail every time).
    @Test func withoutACAFileTheSystemBundleIsUsed() {
        let debian = "/etc/ssl/certs/ca-certificates.crt", rhel = "/etc/pki/tls/certs/ca-bundle.crt"
        #expect(AMQPEndpoint.TLS.systemCAFile(environment: ["SSL_CERT_FILE": "/x/ca.pem"], exists: { _ in false }) == "/x/ca.pem")
        #expect(AMQPEndpoint.TLS.systemCAFile(environment: [:], exists: { $0 == rhel || $0 == debian }) == debian)
        #expect(AMQPEndpoint.TLS.systemCAFile(environment: ["SSL_CERT_FILE": ""], exists: { $0 == rhel }) == rhel)
        #expect(AMQPEndpoint.TLS.systemCAFile(environment: [:], exists: { _ in false }) == nil)
    }

    @Test func backoffIsCappedAndJittered() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(2))
        for attempt in 0..<40 {
            let delay = policy.delay(attempt: attempt)
            let cap = min(Duration.seconds(2), .milliseconds(100) * (1 << min(attempt, 20)))
            #expect(delay <= cap && delay >= cap / 2)
        }
    }
}

/// An operator's typo must not put the broker password into an error message or a log.
@Suite struct URLRedactionTests {
    @Test(arguments: [
        "amqp://user:hunter2@host:port/%2f",  // a port that is not a number
        "amqp://user:hunter2@[::1",  // an unclosed IPv6 bracket
        "amqp://user:hunter2@ho%st",  // a broken escape in the host
        "amqp://user:p@ss:hunter2@host:56x2",  // an unencoded '@' in the password, and a typo
    ])
    func anUnparseableURLIsReportedWithoutItsPassword(url: String) throws {
        let error = try #require(throws: AMQPError.self) { try AMQPEndpoint(url: url) }
        #expect(!error.description.contains("hunter2"), "\(error)")
        #expect(!error.description.contains("ter2"), "\(error)")
        #expect(error.description.contains("user"), "the user name helps find the typo: \(error)")
    }

    @Test func redactionKeepsWhatHasNoPassword() {
        #expect(AMQPEndpoint.redacted("amqp://host/%2f") == "amqp://host/%2f")
        #expect(AMQPEndpoint.redacted("no url at all") == "no url at all")
        // Found by the fuzzer: text Foundation reads as a path, and a forgotten '@'.
        #expect(AMQPEndpoint.redacted("a@qp://user:secret@host:99999/") == "<unparseable URL>")
        #expect(AMQPEndpoint.redacted("amqp://user:secret-host:5672/v") == "amqp://user:***/v")
        #expect(AMQPEndpoint.redacted("user:secret") == "<unparseable URL>")
        #expect(AMQPEndpoint.redacted("amqp://u:secret@h") == "amqp://u:***@h")
    }

    /// rabbitmq-c 0.11 cannot turn SNI off; the parameter used to disable hostname
    /// verification as a side effect.
    @Test func serverNameIndicationIsRefusedAndNeverWeakensVerification() throws {
        let error = try #require(throws: AMQPError.self) { try AMQPEndpoint(url: "amqps://h?server_name_indication=disable") }
        #expect(error.description.contains("verify_hostname=false"))
        #expect(try AMQPEndpoint(url: "amqps://h").tls?.verifyHostname == true)
    }
}
