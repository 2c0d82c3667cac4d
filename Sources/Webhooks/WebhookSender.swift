import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Locking
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
        // An address that refuses or cannot be reached fails the request at once, so the
        // next address can be tried (the client would otherwise retry the same one until
        // the deadline); a delivery is retried on its own schedule anyway.
        configuration.connectionPool.retryConnectionEstablishment = false
        // Warren sends its own span as `traceparent`; the client's own tracing (on when
        // span export is) would add a second one.
        configuration.tracing.tracer = nil
        return configuration
    }

    /// An event that came with a trace is sent as a client span of it (exported when span
    /// export is on), which the subscriber gets as `traceparent` (with `tracestate`).
    func send(_ delivery: WebhookDeliveries.Claimed) async -> AttemptResult {
        guard let parent = delivery.traceparent.flatMap({ TraceContext(traceparent: $0) }) else { return await send(delivery, trace: nil) }
        return await TraceContext.withSpan("webhook POST", ofKind: .client, parent: parent) { trace in await send(delivery, trace: trace) }
    }

    private func send(_ delivery: WebhookDeliveries.Claimed, trace: TraceContext?) async -> AttemptResult {
        if let unreadable = delivery.unreadableSecret { return .failed(unreadable) }
        let destination: Destination
        let addresses: [String]
        do throws(DestinationRefusal) {
            destination = try destinations.check(delivery.url)
            addresses = try await destinations.resolve(destination)
        } catch {
            return .failed("refused by the SSRF guard: \(error.description)")
        }
        return await send(delivery, to: destination, addresses: addresses, trace: trace)
    }

    /// Posts to `addresses` in turn (none: the client resolves the host itself) until one
    /// accepts the connection; what it answers is the result. Every address gets the same
    /// request within the one timeout.
    func send(_ delivery: WebhookDeliveries.Claimed, to destination: Destination, addresses: [String], trace: TraceContext?) async -> AttemptResult {
        let deadline = ContinuousClock.now + timeout
        // The checked URL: its host is the one the client's pinned address is keyed by.
        var request = HTTPClientRequest(url: destination.url)
        request.method = .POST
        let body = Array(delivery.payload.utf8)
        request.headers.add(name: "Content-Type", value: "application/cloudevents+json")
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        let timestamp = Int64(Date().timeIntervalSince1970)
        for (name, value) in WebhookSigning.headers(webhookID: delivery.webhookID, timestamp: timestamp, body: body, secrets: delivery.secrets) {
            request.headers.add(name: name, value: value)
        }
        if let trace {
            request.headers.add(name: "traceparent", value: trace.traceparent)
            if let state = trace.state { request.headers.add(name: "tracestate", value: state) }
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        var response: HTTPClientResponse?
        var unreachable: [String] = []
        for address in addresses.isEmpty ? [nil] : addresses.map(Optional.some) {
            let client = self.client(for: destination, address: address)
            do {
                response = try await client.execute(request, deadline: NIODeadline.now() + TimeAmount(deadline - ContinuousClock.now))
                break
            } catch let error where Self.neverConnected(error) && ContinuousClock.now < deadline {
                unreachable.append("\(address ?? destination.host): \(error)")
            } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout].contains(error) {
                return .timedOut
            } catch {
                return .failed(String("\(error)".prefix(300)))
            }
        }
        guard let response else {
            let tried = unreachable.count == 1 ? "" : " (none of its \(unreachable.count) addresses)"
            return .failed(String("could not connect\(tried): \(unreachable.joined(separator: "; "))".prefix(300)))
        }
        let result = AttemptResult.response(
            status: Int(response.status.code), retryAfter: DeliveryPolicy.retryAfter(response.headers.first(name: "Retry-After")))
        // The answer is known. Read (and drop) a bounded body so the connection can be
        // reused, but never past the deadline: AsyncHTTPClient's deadline ends with the
        // head, and a receiver that stalls its body must not hold the slot.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await response.body.collect(upTo: 64 * 1024) }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
        return result
    }

    /// The request never reached the endpoint: the connection was refused or could not be
    /// made (no route, no answer to the connect), so another address may still take it.
    static func neverConnected(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let error = error as? HTTPClientError { return error == .connectTimeout }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        if let error = error as? IOError { return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ETIMEDOUT].contains(error.errnoCode) }
        return false
    }

    private func client(for destination: Destination, address: String?) -> HTTPClient {
        guard let address, address != destination.host else { return direct }
        let key = "\(destination.host)=\(address)"
        let (client, evicted) = pinned.withLock { clients -> (HTTPClient, [HTTPClient]) in
            if let client = clients[key] { return (client, []) }
            var evicted: [HTTPClient] = []
            if clients.count >= Self.maximumPinnedClients, let old = clients.keys.first {
                evicted.append(clients.removeValue(forKey: old)!)
            }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: Self.configuration(pinning: [destination.host: address]))
            clients[key] = client
            return (client, evicted)
        }
        // An evicted client may still carry requests: shut down once they are over.
        let grace = timeout + .seconds(5)
        for old in evicted {
            Task {
                try? await Task.sleep(for: grace)
                try? await old.shutdown()
            }
        }
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
