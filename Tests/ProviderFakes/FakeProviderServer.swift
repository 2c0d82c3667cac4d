import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes
import Locking

/// What a fake provider does to the next requests that pass its contract checks, one
/// fault per request, before it goes back to behaving.
public enum FakeFault: Sendable {
    /// Answer this status with the provider's error JSON (type and message where the
    /// provider has them).
    case status(Int, type: String = "api_error", code: String? = nil, message: String = "simulated failure")
    /// 429, asking the client to come back after `resetIn`.
    case rateLimited(resetIn: Duration)
    /// Say nothing for `duration` (longer than the client's timeout), then 500.
    case hang(Duration)
    /// Process and record the request as usual, then close the connection without a
    /// response: the client cannot know whether it worked.
    case dropAfterProcessing
    /// Process and record the request as usual, then say nothing for `duration` (longer
    /// than the client's timeout) before answering.
    case hangAfterProcessing(Duration)
    /// 307 to `location` (a client must not follow it with the request and its key).
    case redirect(to: String)
}

/// A fake server that could not start.
public struct FakeServerError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A provider's request as the fake saw it, for assertions.
public struct FakeRequest: Sendable {
    public var path: String
    public var receivedAt: ContinuousClock.Instant
    public var idempotencyKey: String?
}

/// A fake provider's HTTP server: real HTTP/1.1 on 127.0.0.1 on a free port, a queue of
/// faults, and a log of requests. `dropAfterProcessing` is done by a channel handler
/// that, seeing a response marked by the route, closes the connection instead of
/// writing it, so the route's side effects happen and the client gets no answer.
public final class FakeProviderServer: Sendable {
    public let port: Int
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    private let task: Task<Void, any Error>
    private let faults: Mutex<[FakeFault]>
    private let log: Mutex<[FakeRequest]>

    public static let dropMarker = HTTPField.Name("x-fake-drop-connection")!

    /// Starts a server; `routes` adds the provider's routes to the router.
    public static func start(routes: (Router<BasicRequestContext>) -> Void) async throws -> FakeProviderServer {
        let router = Router()
        routes(router)
        var logger = Logger(label: "fake-provider")
        logger.logLevel = .critical
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [DropConnectionHandler()])),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw FakeServerError(message: "fake provider did not start")
        }
        return FakeProviderServer(port: port, task: task)
    }

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
        faults = Mutex([])
        log = Mutex([])
    }

    public func stop() {
        task.cancel()
    }

    /// Queues faults for the next requests, in order.
    public func fail(_ faults: FakeFault...) {
        self.faults.withLock { $0 += faults }
    }

    public var requests: [FakeRequest] { log.withLock { $0 } }

    /// Records a request that passed the contract checks and returns its fault, if any.
    public func admit(_ path: String, idempotencyKey: String?) -> FakeFault? {
        log.withLock { $0.append(FakeRequest(path: path, receivedAt: .now, idempotencyKey: idempotencyKey)) }
        return faults.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    public static func json(_ status: Int, _ object: Any, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    public static func redirect(to location: String) -> Response {
        Response(status: .temporaryRedirect, headers: [.location: location])
    }

    /// `response`, marked so that the connection is closed instead of it being sent.
    public static func dropped(_ response: Response) -> Response {
        var response = response
        response.headers[dropMarker] = "1"
        return response
    }
}

/// Closes the connection when the route marked its response (see `FakeProviderServer`),
/// swallowing the response.
private final class DropConnectionHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private var dropping = false

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data), head.headerFields[FakeProviderServer.dropMarker] != nil {
            dropping = true
            context.close(promise: nil)
        }
        guard !dropping else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}

extension Request {
    /// The bearer token of `Authorization`, if it has one.
    public var bearerToken: String? {
        guard let value = headers[.authorization], value.hasPrefix("Bearer ") else { return nil }
        return String(value.dropFirst("Bearer ".count))
    }

    public func bodyBytes() async throws -> [UInt8] {
        Array(buffer: try await body.collect(upTo: 1 << 20))
    }

    public func header(_ name: String) -> String? {
        HTTPField.Name(name).flatMap { headers[$0] }
    }
}
