import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What one vhost holds, as far as a topology cares: the exchange, every queue, and the
/// bindings from the exchange to queues.
public struct LiveTopology: Sendable, Equatable {
    /// nil when the exchange does not exist.
    public var exchange: LiveExchange?
    public var queues: [String: LiveQueue]
    public var bindings: [BindingDeclaration]

    public init(exchange: LiveExchange?, queues: [String: LiveQueue], bindings: [BindingDeclaration]) {
        self.exchange = exchange
        self.queues = queues
        self.bindings = bindings
    }
}

public struct LiveExchange: Sendable, Equatable, Decodable {
    public var name: String
    public var type: String
    public var durable: Bool

    public init(name: String, type: String, durable: Bool) {
        self.name = name
        self.type = type
        self.durable = durable
    }
}

public struct LiveQueue: Sendable, Equatable, Decodable {
    public var name: String
    public var durable: Bool
    public var arguments: [String: ArgumentValue]

    public init(name: String, durable: Bool, arguments: [String: ArgumentValue]) {
        self.name = name
        self.durable = durable
        self.arguments = arguments
    }
}

/// The RabbitMQ management HTTP API, read-only: the live state `plan` compares the file with.
public struct ManagementClient: Sendable {
    /// `http://127.0.0.1:15672`, without credentials.
    public let baseURL: URL
    public let vhost: String
    private let authorization: String

    /// `url` may carry `user:password@`; otherwise `user` and `password` are used (the AMQP
    /// URL's, as the CLI passes them).
    public init(url: String, user: String, password: String, vhost: String) throws(TopologyError) {
        guard var components = URLComponents(string: url), let scheme = components.scheme, ["http", "https"].contains(scheme),
              components.host != nil
        else { throw TopologyError(.managementAPI, "not an http(s) URL: \(url)") }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? user
        let password = components.password.flatMap { $0.removingPercentEncoding } ?? password
        components.user = nil
        components.password = nil
        components.path = ""
        baseURL = components.url!
        self.vhost = vhost
        authorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    /// The client for the broker `amqpURL` points at (its first URL's credentials and vhost).
    public static func forBroker(amqpURL: String, managementURL: String) throws -> ManagementClient {
        let endpoint = try AMQPConfiguration(urls: amqpURL).endpoints[0]
        return try ManagementClient(url: managementURL, user: endpoint.user, password: endpoint.password, vhost: endpoint.vhost)
    }

    public func liveTopology(exchange: String) async throws(TopologyError) -> LiveTopology {
        let vhostPath = Self.encode(vhost)
        guard try await get("/api/vhosts/\(vhostPath)", as: Ignored.self) != nil else {
            throw TopologyError(.managementAPI, "vhost '\(vhost)' does not exist")
        }
        let live = try await get("/api/exchanges/\(vhostPath)/\(Self.encode(exchange))", as: LiveExchange.self)
        let queues = try await get("/api/queues/\(vhostPath)?disable_stats=true", as: [LiveQueue].self) ?? []
        var bindings: [BindingDeclaration] = []
        if live != nil {
            let all = try await get("/api/exchanges/\(vhostPath)/\(Self.encode(exchange))/bindings/source", as: [LiveBinding].self) ?? []
            bindings = all.filter { $0.destination_type == "queue" }.map {
                BindingDeclaration(exchange: $0.source, queue: $0.destination, routingKey: $0.routing_key, arguments: $0.arguments)
            }
        }
        return LiveTopology(
            exchange: live, queues: Dictionary(queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }),
            bindings: bindings.sorted())
    }

    private struct LiveBinding: Decodable {
        var source: String
        var destination: String
        var destination_type: String
        var routing_key: String
        var arguments: [String: ArgumentValue]
    }

    private struct Ignored: Decodable {}

    /// The decoded body, or nil for 404.
    private func get<T: Decodable>(_ path: String, as type: T.Type) async throws(TopologyError) -> T? {
        var request = URLRequest(url: URL(string: baseURL.absoluteString + path)!, timeoutInterval: 10)
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw TopologyError(.managementAPI, "management API unreachable at \(baseURL.absoluteString) (\(error.localizedDescription))")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        switch status {
        case 200..<300:
            do {
                return try JSONDecoder().decode(T.self, from: data)
            } catch {
                throw TopologyError(.managementAPI, "unexpected answer from the management API to GET \(path): \(error)")
            }
        case 404:
            return nil
        case 401, 403:
            throw TopologyError(.managementAPI, "the management API at \(baseURL.absoluteString) refused the credentials (HTTP \(status))")
        default:
            throw TopologyError(.managementAPI, "the management API answered GET \(path) with HTTP \(status)")
        }
    }

    /// A path segment: everything but unreserved characters percent-encoded ("/" → %2F).
    static func encode(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"))!
    }
}
