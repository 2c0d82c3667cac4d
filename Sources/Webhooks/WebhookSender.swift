import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import WarrenCore

/// Sends one attempt of a delivery: checks and resolves the URL through the guard, POSTs
/// the CloudEvent with its signatures to the checked address (redirects never followed),
/// and reports what came back. Never throws: every failure is an `AttemptResult`.
final class WebhookSender: Sendable {
    static let userAgent = "Warren/\(WarrenVersion.current)"

    let destinations: DestinationGuard
    let timeout: Duration
    /// Requests to a host that needs no pinned address (an IP literal, or the guard lifted).
    private let direct: HTTPClient
    /// One client per (host, checked address): AsyncHTTPClient pins a host to an address
    /// per client (`dnsOverride`), keeping TLS' server name and certificate check on the
    /// host. Few entries: one per subscriber host.
    private let pinned = Mutex<[String: HTTPClient]>([:])
    private static let maximumPinnedClients = 256

    init(destinations: DestinationGuard, timeout: Duration) {
        self.destinations = destinations
        self.timeout = timeout
        direct = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: Self.configuration(pinning: [:]))
    }

    private static func configuration(pinning: [String: String]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.dnsOverride = pinning
        configuration.timeout = .init(connect: .seconds(10))
        return configuration
    }

    func send(_ delivery: WebhookDeliveries.Claimed) async -> AttemptResult {
        let client: HTTPClient
        do throws(DestinationRefusal) {
            let destination = try destinations.check(delivery.url)
            client = try await self.client(for: destination, address: destinations.resolve(destination))
        } catch {
            return .failed("refused by the SSRF guard: \(error.description)")
        }
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        let body = Array(delivery.payload.utf8)
        request.headers.add(name: "Content-Type", value: "application/cloudevents+json")
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        let timestamp = Int64(Date().timeIntervalSince1970)
        for (name, value) in WebhookSigning.headers(webhookID: delivery.webhookID, timestamp: timestamp, body: body, secrets: delivery.secrets) {
            request.headers.add(name: name, value: value)
        }
        if let traceparent = delivery.traceparent { request.headers.add(name: "traceparent", value: traceparent) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let deadline = NIODeadline.now() + TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        do {
            let response = try await client.execute(request, deadline: deadline)
            let retryAfter = DeliveryPolicy.retryAfter(response.headers.first(name: "Retry-After"))
            // Read (and drop) a bounded body so the connection can be reused; a larger or
            // slower body closes it, the answer is already known.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return .response(status: Int(response.status.code), retryAfter: retryAfter)
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .writeTimeout].contains(error) {
            return .timedOut
        } catch {
            return .failed(String("\(error)".prefix(300)))
        }
    }

    private func client(for destination: Destination, address: String?) -> HTTPClient {
        guard let address, address != destination.host else { return direct }
        let key = "\(destination.host)=\(address)"
        let (client, evicted) = pinned.withLock { clients -> (HTTPClient, [HTTPClient]) in
            if let client = clients[key] { return (client, []) }
            var evicted: [HTTPClient] = []
            if clients.count >= Self.maximumPinnedClients {
                evicted = Array(clients.values)
                clients.removeAll()
            }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: Self.configuration(pinning: [destination.host: address]))
            clients[key] = client
            return (client, evicted)
        }
        for old in evicted { old.shutdown { _ in } }
        return client
    }

    func shutdown() async {
        let clients = pinned.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in clients + [direct] { try? await client.shutdown() }
    }
}
