import AMQP
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import NIOCore
import Observability
import Postgres
import ServiceLifecycle
import SharedState
import Locking
import WarrenCore
import Webhooks

/// Warren's HTTP front door (`warren serve`, and part of `warren run`), a `Service` that
/// runs Hummingbird next to the broker connection and the database pool it uses:
///
/// - `POST /v1/events`: publish one event or an array, `Authorization: Bearer <key>`;
///   `202` with the ids once the broker confirmed every one.
/// - `POST /webhooks/stripe`: a Stripe webhook, verified, becomes `payment.*` or `stripe.*`.
/// - `GET /healthz` (up), `GET /readyz` (broker connected and not blocked, database
///   answering, and whatever else the process adds, e.g. consumers subscribed) and
///   `GET /metrics` (Prometheus), from `ObservabilityRoutes`.
///
/// Every refusal is a 4xx/503 with a JSON error body (`APIFailure`); nothing is
/// acknowledged before the broker confirmed it.
public struct HTTPServer: Service, CustomStringConvertible {
    /// What logs show (ServiceGroup logs its services): the address, never a secret.
    public var description: String { "HTTPServer(\(configuration.host):\(configuration.port))" }

    public struct Configuration: Sendable, CustomStringConvertible {
        public var description: String {
            "HTTP \(host):\(port), max body \(maxBodySize) bytes, \(stripeSecrets.count) Stripe secret(s), tolerance \(signatureTolerance) s, "
                + "webhook sources: \(webhookSources.map(\.name).joined(separator: ", "))"
        }

        public var host: String
        public var port: Int
        /// Largest request body read; larger ones get 413 without being read.
        public var maxBodySize: Int
        /// Stripe endpoint secrets (`STRIPE_WEBHOOK_SECRET`, comma-separated during rotation).
        public var stripeSecrets: [String]
        public var signatureTolerance: Int
        /// The sources of `webhooks/sources.yaml` and their secrets (by source name, from
        /// the environment variables the file names).
        public var webhookSources: [WebhookSource] = []
        public var webhookSecrets: [String: [String]] = [:]
        /// Which URLs outbound webhook subscriptions may name (`WARREN_WEBHOOK_ALLOW_PRIVATE`,
        /// `WARREN_WEBHOOK_HTTP_HOSTS`).
        public var webhookDestinations = DestinationGuard()
        /// How subscription secrets are stored (`WARREN_SECRETS_KEY`).
        public var webhookSecretSealer = SecretSealer.clear
        /// Connections open at once; more are closed as they are accepted.
        public var maxConnections = 1024
        /// How long a valid key is remembered without asking the database again (so a
        /// revocation takes effect within this); zero asks on every request.
        public var keyCacheDuration: Duration = .seconds(5)
        /// A request's head must arrive within this of the connection opening or of the
        /// previous response (also how long an idle keep-alive connection stays open).
        public var headerTimeout: Duration = .seconds(30)
        /// A request's body must arrive within this of its head.
        public var bodyTimeout: Duration = .seconds(30)
        /// Idle connections are closed after this long.
        public var idleTimeout: Duration
        public var publishTimeout: Duration

        public init(
            host: String = "127.0.0.1", port: Int = 8080, maxBodySize: Int = 256 * 1024, stripeSecrets: [String] = [],
            signatureTolerance: Int = 300, idleTimeout: Duration = .seconds(60), publishTimeout: Duration = .seconds(10)
        ) {
            self.host = host
            self.port = port
            self.maxBodySize = maxBodySize
            self.stripeSecrets = stripeSecrets
            self.signatureTolerance = signatureTolerance
            self.idleTimeout = idleTimeout
            self.publishTimeout = publishTimeout
        }

        /// `host:port`, e.g. `127.0.0.1:8080` or `0.0.0.0:80`.
        public static func address(_ text: String) throws(HTTPAPIError) -> (host: String, port: Int) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
                colon != text.startIndex
            else { throw HTTPAPIError(description: "invalid HTTP address '\(text)': expected HOST:PORT, e.g. 127.0.0.1:8080") }
            let host = text[..<colon]
            return (host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : String(host), port)
        }
    }

    let configuration: Configuration
    let amqp: AMQPConnection
    let database: PostgresPool
    let catalog: EventCatalog
    let exchange: String
    let readiness: Readiness
    let shared: SharedStore
    let logger: Logger

    /// `readiness`: what `/readyz` checks; by default the broker and the database.
    /// `shared`: Redis' shared rate limits, key cache and webhook replay claims (without
    /// Redis, each process' own limits and cache, and PostgreSQL alone).
    public init(
        configuration: Configuration, amqp: AMQPConnection, database: PostgresPool, catalog: EventCatalog, exchange: String,
        readiness: Readiness? = nil, shared: SharedStore? = nil, logger: Logger
    ) {
        self.shared = shared ?? SharedStore(configuration: nil, logger: logger)
        self.readiness = readiness ?? Readiness([.broker(amqp), .database(database)])
        self.configuration = configuration
        self.amqp = amqp
        self.database = database
        self.catalog = catalog
        self.exchange = exchange
        self.logger = logger
    }

    public func run() async throws {
        let channel = try await amqp.openChannel(confirms: true)
        let publisher = EventPublisher(channel: channel, catalog: catalog, options: PublishOptions(exchange: exchange, timeout: configuration.publishTimeout))
        let routes = try Routes(
            configuration: configuration, amqp: amqp, database: database, publisher: publisher, keys: APIKeyStore(database: database, shared: shared, localTTL: configuration.keyCacheDuration),
            receipts: WebhookReceipts(database: database), shared: shared,
            subscriptions: WebhookSubscriptions(database: database, destinations: configuration.webhookDestinations, sealer: configuration.webhookSecretSealer),
            stripe: StripeSignatureVerifier(secrets: configuration.stripeSecrets, tolerance: configuration.signatureTolerance), logger: logger)
        let router = Router()
        router.add(middleware: HTTPMetricsMiddleware())  // outermost: it counts the final answer
        router.add(middleware: TraceContextMiddleware())  // the request's trace, for what it publishes and logs
        router.add(middleware: JSONErrorMiddleware())  // then: it wraps every route and the not-found answer
        ObservabilityRoutes.add(to: router, readiness: readiness)
        routes.add(to: router)
        let (logger, configuration) = (self.logger, self.configuration)
        let counter = ConnectionGuard.Counter()
        let (maxConnections, headerTimeout, bodyTimeout) = (
            configuration.maxConnections, TimeAmount(configuration.headerTimeout), TimeAmount(configuration.bodyTimeout)
        )
        let app = Application(
            router: router,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [
                    ConnectionGuard(counter: counter, maxConnections: maxConnections, headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)
                ],
                idleTimeout: TimeAmount(configuration.idleTimeout))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "warren"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.info("http.listening", metadata: ["http.address": "\(configuration.host):\(port)"])
            },
            logger: logger)
        try await app.run()
        await channel.close()
    }
}

/// The handlers. Each answers every failure itself as an `APIFailure` response.
final class Routes: Sendable {
    let configuration: HTTPServer.Configuration
    let amqp: AMQPConnection
    let database: PostgresPool
    let publisher: EventPublisher
    let keys: APIKeyStore
    let receipts: WebhookReceipts
    let shared: SharedStore
    let replay: ReplayGuard
    let subscriptions: WebhookSubscriptions
    let stripe: StripeSignatureVerifier
    let logger: Logger
    /// One limiter per rate-limited key (shared by every replica through Redis when
    /// configured), created on its first request.
    private let limiters = Mutex<[String: (rate: Int, bucket: any TokenBucket)]>([:])
    let sources: [String: ConfiguredSource]
    /// Every webhook source's name, Stripe's included: the id prefixes a key may not use.
    let webhookNames: Set<String>

    /// A webhook source with its verifier; nil verifier: no secret set, not served.
    struct ConfiguredSource: Sendable {
        var source: WebhookSource
        var hex: HexHMACVerifier?
        var standard: StandardWebhooksVerifier?
    }

    init(
        configuration: HTTPServer.Configuration, amqp: AMQPConnection, database: PostgresPool, publisher: EventPublisher, keys: APIKeyStore,
        receipts: WebhookReceipts, shared: SharedStore, subscriptions: WebhookSubscriptions, stripe: StripeSignatureVerifier, logger: Logger
    ) throws(HTTPAPIError) {
        self.shared = shared
        self.replay = shared.replay
        sources = try Self.configure(configuration)
        webhookNames = Set(sources.keys).union(["stripe"])
        self.configuration = configuration
        self.amqp = amqp
        self.database = database
        self.publisher = publisher
        self.keys = keys
        self.receipts = receipts
        self.subscriptions = subscriptions
        self.stripe = stripe
        self.logger = logger
    }

    static func configure(_ configuration: HTTPServer.Configuration) throws(HTTPAPIError) -> [String: ConfiguredSource] {
        var sources: [String: ConfiguredSource] = [:]
        for source in configuration.webhookSources {
            let secrets = configuration.webhookSecrets[source.name] ?? []
            var configured = ConfiguredSource(source: source)
            if !secrets.isEmpty {
                switch source.scheme {
                case .xSignature: configured.hex = HexHMACVerifier(header: source.header, secrets: secrets)
                case .standardWebhooks:
                    do {
                        configured.standard = try StandardWebhooksVerifier(secrets: secrets, tolerance: configuration.signatureTolerance)
                    } catch {
                        throw HTTPAPIError(description: "\(source.secretsVariable) (webhook source \(source.name)): \(error.description)")
                    }
                }
            }
            sources[source.name] = configured
        }
        return sources
    }

    /// Every route, as the OpenAPI document names them (`OpenAPITests` compares the two).
    static let routes = [
        "GET /openapi.json", "POST /v1/events", "POST /webhooks/stripe", "POST /webhooks/{source}",
    ] + WebhookRoutes.routes + ObservabilityRoutes.routes

    func add(to router: Router<BasicRequestContext>) {
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.post("/v1/events") { request, _ in await self.answer { try await self.publishEvents(request) } }
        addWebhookSubscriptions(to: router)
        router.post("/webhooks/stripe") { request, _ in await self.answer { try await self.stripeWebhook(request) } }
        router.post("/webhooks/:source") { request, context in
            await self.answer { try await self.sourceWebhook(request, name: context.parameters.get("source") ?? "") }
        }
    }

    func answer(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as APIFailure {
            return failure.response
        } catch let error as EventError {
            return APIFailure.invalid(error).response
        } catch let error as WebhookError {
            return APIFailure(error).response
        } catch let error as PostgresError {
            // Keys and webhook receipts live in the database: without it nothing is
            // decided, nothing was published; the sender retries.
            logger.warning("http.database.failed", metadata: ["error": "\(error)"])
            return APIFailure(.serviceUnavailable, "unavailable", "the database is not reachable; retry", retryAfter: 5).response
        } catch {
            logger.error("http.request.failed", metadata: ["error": "\(error)"])
            return APIFailure(.internalServerError, "internal", "the request could not be completed; nothing was published for it").response
        }
    }

    /// 503 while publishing cannot succeed now; the sender retries and nothing is lost.
    private func requireBroker() throws(APIFailure) {
        if let problem = Readiness.Check.brokerProblem(amqp.state) { throw APIFailure(.serviceUnavailable, "unavailable", problem, retryAfter: 5) }
    }

    // MARK: Bodies

    /// The body, refused with 413 before reading when `Content-Length` says it is too
    /// large, and as soon as a chunked body passes the limit.
    func body(_ request: Request) async throws -> [UInt8] {
        let limit = configuration.maxBodySize
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIFailure(.contentTooLarge, "too_large", "the body is \(length) bytes; the limit is \(limit)")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch {
            throw APIFailure(.contentTooLarge, "too_large", "the body is over the limit of \(limit) bytes")
        }
    }

    func json(_ bytes: [UInt8]) throws(APIFailure) -> JSONValue {
        do {
            return try JSONValue(parsing: bytes)
        } catch {
            throw APIFailure(.badRequest, "malformed_json", "the body is not valid JSON (\(error))")
        }
    }

    // MARK: POST /v1/events

    private func publishEvents(_ request: Request) async throws -> Response {
        let key = try await authenticate(request)
        if let rate = key.ratePerSecond {
            let limiter = limiters.withLock { limiters in
                if let known = limiters[key.name], known.rate == rate { return known.bucket }
                let bucket = shared.rateLimiter(name: "apikey:\(key.name)", rate: rate, per: .seconds(1))
                limiters[key.name] = (rate, bucket)
                return bucket
            }
            guard await limiter.tryAcquire() else {
                throw APIFailure(.tooManyRequests, "rate_limited", "key '\(key.name)' may send \(rate) requests per second", retryAfter: 1)
            }
        }
        let value = try json(try await body(request))
        let inputs: [(JSONValue, prefix: String)]
        if case .array(let items) = value {
            guard !items.isEmpty else { throw APIFailure(.badRequest, "invalid_event", "the array holds no events") }
            inputs = items.enumerated().map { ($1, "[\($0)].") }
        } else {
            inputs = [(value, "")]
        }
        let events = try inputs.map { input, prefix throws(APIFailure) in try event(input, prefix: prefix, key: key) }
        try requireBroker()
        do {
            try await publisher.publishInOrder(events)
        } catch {
            throw publishFailure(error)
        }
        return APIResponse.json(["ids": .array(events.map { .string($0.id) })], status: .accepted)
    }

    /// One event of the request, checked before anything is published.
    private func event(_ input: JSONValue, prefix: String, key: APIKey) throws(APIFailure) -> CloudEvent {
        let event: CloudEvent
        do throws(EventError) {
            event = try CloudEvent(input: input, defaultSource: "/http/\(key.name)")
        } catch {
            throw APIFailure.invalid(error, prefix: prefix)
        }
        // Permission first: a key learns nothing about the schemas of types it may not publish.
        guard key.mayPublish(event.type) else {
            throw APIFailure(.forbidden, "type_not_allowed", "key '\(key.name)' may not publish '\(event.type)'", field: prefix + "type")
        }
        // What only verified webhooks publish: their source and their ids. A key must not
        // pass for Stripe, nor take an id a webhook event will have (it would be dropped
        // as a duplicate by the consumers' inboxes).
        if event.source.hasPrefix("/webhooks/") {
            throw APIFailure(.forbidden, "source_not_allowed", "source '/webhooks/…' is reserved for verified webhooks", field: prefix + "source")
        }
        if let colon = event.id.firstIndex(of: ":"), webhookNames.contains(String(event.id[..<colon])) {
            throw APIFailure(.forbidden, "id_not_allowed", "ids '<webhook source>:…' are reserved for webhook events", field: prefix + "id")
        }
        do throws(EventError) {
            try publisher.validate(event)
        } catch {
            throw APIFailure.invalid(error, prefix: prefix)
        }
        return event
    }

    func authenticate(_ request: Request) async throws -> APIKey {
        guard let header = request.headers[.authorization], let secret = Self.bearerToken(header) else {
            throw APIFailure(.unauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>")
        }
        // Only the shape a key can have reaches the database (no query per garbage token).
        guard APIKeyStore.isWellFormed(secret) else {
            throw APIFailure(.unauthorized, "unauthorized", "the API key in Authorization is not valid (unknown or revoked)")
        }
        guard let key = try await keys.authenticate(hash: APIKeyStore.hash(secret)) else {
            throw APIFailure(.unauthorized, "unauthorized", "the API key in Authorization is not valid (unknown or revoked)")
        }
        return key
    }

    /// The token of `Bearer <token>` (scheme in any case, spaces and tabs around the
    /// token ignored), or nil for another scheme.
    static func bearerToken(_ header: String) -> String? {
        let utf8 = header.utf8
        let scheme = "bearer ".utf8
        guard utf8.count >= scheme.count, zip(utf8, scheme).allSatisfy({ $0 == $1 || ($1 >= UInt8(ascii: "a") && $1 <= UInt8(ascii: "z") && $0 == $1 - 0x20) }) else { return nil }
        func blank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let rest = utf8.dropFirst(scheme.count)
        guard let first = rest.firstIndex(where: { !blank($0) }), let last = rest.lastIndex(where: { !blank($0) }) else { return "" }
        return String(header[first...last])
    }

    /// What the sender should do when the broker did not confirm: come back (503) or fix
    /// the topology (422).
    private func publishFailure(_ error: any Error) -> APIFailure {
        if let error = error as? AMQPError, error.code == .publishReturned {
            return APIFailure(.unprocessableContent, "unroutable", "no queue is bound for this event type: \(error.context)")
        }
        logger.warning("http.publish.failed", metadata: ["error": "\(error)"])
        if let error = error as? AMQPError, error.code == .channelClosed, error.replyCode == 404 {
            return APIFailure(
                .serviceUnavailable, "unavailable", "the broker has no exchange '\(publisher.options.exchange)' (run `warren topology apply`); retry",
                retryAfter: 5)
        }
        return APIFailure(.serviceUnavailable, "unavailable", "the broker did not confirm the event; retry", retryAfter: 5)
    }

    // MARK: POST /webhooks/stripe

    private func stripeWebhook(_ request: Request) async throws -> Response {
        guard !stripe.secrets.isEmpty else {
            throw APIFailure(.notFound, "not_configured", "Stripe webhooks are not configured (set STRIPE_WEBHOOK_SECRET)")
        }
        let bytes = try await body(request)
        do {
            try stripe.verify(header: request.headers[HTTPField.Name("Stripe-Signature")!], body: bytes)
        } catch {
            let message = switch error {
            case .missingHeader: "missing Stripe-Signature header"
            case .malformedHeader, .noV1Signature: "the Stripe-Signature header has no usable t= and v1= parts"
            case .outsideTolerance: "the Stripe-Signature timestamp is outside the tolerance of \(stripe.tolerance) s"
            case .mismatch: "the Stripe-Signature header does not verify"
            }
            throw APIFailure(.unauthorized, "invalid_signature", message)
        }
        let payload = try json(bytes)
        let parsed: StripeEvents.Parsed
        do throws(EventError) {
            parsed = try StripeEvents.parse(payload)
        } catch {
            throw APIFailure.invalid(error)
        }
        return try await once(source: "stripe", deliveryID: parsed.id) {
            let event = try await StripeEvents.cloudEvent(for: parsed, userForCustomer: receipts.userForStripeCustomer)
            return try await publishWebhook(event, source: "stripe", deliveryID: parsed.id)
        }
    }

    /// Publishes a verified webhook's delivery at most once across replicas: a Redis
    /// claim (`ReplayGuard`) decides which of two concurrent requests publishes (the other
    /// gets 409 and retries), and PostgreSQL's receipt answers every later redelivery as
    /// a duplicate. Without Redis, or while it is down, the receipt alone decides.
    private func once(source: String, deliveryID: String?, _ publish: () async throws -> Response) async throws -> Response {
        guard let deliveryID else { return try await publish() }
        let eventID = WebhookSource.eventID(source: source, deliveryID: deliveryID)
        let duplicate = APIResponse.json(["id": .string(eventID), "duplicate": true])
        let claim = await replay.claim(source: source, id: deliveryID)
        switch claim {
        case .published: return duplicate
        case .inProgress:
            throw APIFailure(.conflict, "in_progress", "this webhook delivery is being published by another request; retry", retryAfter: 1)
        case .claimed, .unavailable: break
        }
        let response: Response
        do {
            if try await receipts.seen(source: source, id: deliveryID) {
                response = duplicate
            } else {
                response = try await publish()
            }
        } catch {
            if case .claimed(let token) = claim { await replay.release(source: source, id: deliveryID, token: token) }
            throw error
        }
        await replay.complete(source: source, id: deliveryID, eventID: eventID)
        return response
    }

    /// A verified webhook's event: validated, published with confirm (503 while the broker
    /// cannot take it: the sender retries), and only then its delivery id recorded.
    private func publishWebhook(_ event: CloudEvent, source: String, deliveryID: String?) async throws -> Response {
        do throws(EventError) {
            try publisher.validate(event)
        } catch {
            throw APIFailure.invalid(error)
        }
        try requireBroker()
        do {
            try await publisher.publish(event)
        } catch {
            throw publishFailure(error)
        }
        if let deliveryID {
            // The event is out: a failed record only means a redelivery publishes the same
            // event id again (consumers' inboxes drop it). Not an error for the sender.
            do {
                try await receipts.record(source: source, id: deliveryID, eventID: event.id)
            } catch {
                logger.warning("http.webhook.receipt_not_recorded", metadata: ["webhook.source": "\(source)", "error": "\(error)"])
            }
        }
        return APIResponse.json(["id": .string(event.id), "type": .string(event.type)])
    }

    // MARK: POST /webhooks/{source}

    private func sourceWebhook(_ request: Request, name: String) async throws -> Response {
        guard let configured = sources[name] else {
            throw APIFailure(.notFound, "unknown_source", "no webhook source '\(name)' (configured in webhooks/sources.yaml)")
        }
        let source = configured.source
        guard configured.hex != nil || configured.standard != nil else {
            throw APIFailure(.notFound, "not_configured", "webhook source '\(name)' has no secret (set \(source.secretsVariable))")
        }
        let bytes = try await body(request)
        var deliveryID: String?
        do throws(SignatureFailure) {
            if let hex = configured.hex {
                try hex.verify(signature: request.headers[HTTPField.Name(source.header)!], body: bytes)
            } else if let standard = configured.standard {
                func header(_ name: String) -> String? { request.headers[HTTPField.Name(name)!] }
                deliveryID = try standard.verify(
                    id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"), body: bytes)
            }
        } catch {
            let reason = switch error {
            case .missingHeader(let header): "missing \(header) header"
            case .malformedHeader(let header): "the \(header) header is malformed"
            case .outsideTolerance(let header): "the \(header) is outside the tolerance"
            case .mismatch(let header): "the \(header) header does not verify"
            }
            throw APIFailure(.unauthorized, "invalid_signature", reason)
        }
        let payload = try json(bytes)
        if source.scheme == .xSignature { deliveryID = source.deliveryID(in: payload, body: bytes) }
        let event: CloudEvent
        do throws(EventError) {
            event = try source.event(payload: payload, deliveryID: deliveryID)
        } catch {
            throw APIFailure.invalid(error)
        }
        guard source.mayPublish(event.type) else {
            throw APIFailure(.forbidden, "type_not_allowed", "'\(event.type)' is not among the types source '\(name)' may publish")
        }
        return try await once(source: name, deliveryID: deliveryID) {
            try await publishWebhook(event, source: name, deliveryID: deliveryID)
        }
    }
}
