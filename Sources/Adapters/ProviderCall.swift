import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import WarrenCore

/// One POST to a provider, with what every provider shares: a token from the endpoint's
/// rate limiter before each attempt, a deadline, the short in-process retry of transient
/// failures, and network failures turned into transient `ProviderError`s. The provider
/// turns its own error answers into `ProviderError`s through `rejected`.
///
/// A call that is not `idempotent` (SendGrid has no idempotency key) is repeated only when
/// the request surely never left (no connection could be made) or the provider answered;
/// a timeout or a dropped connection after the request went out is `.outcomeUnknown`,
/// never retried here.
struct ProviderCall: Sendable {
    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    let provider: String
    let endpoint: ProviderEndpoint
    let client: HTTPClient
    let logger: Logger
    /// Safe to repeat once it may have been processed (Stripe's Idempotency-Key).
    let idempotent: Bool

    func post(
        _ path: String, contentType: String, body: [UInt8], headers extra: [(String, String)] = [],
        rejected: (Response) -> ProviderError
    ) async throws -> Response {
        var attempt = 0
        return try await endpoint.retry.run(
            shouldRetry: { error in
                // A wait longer than the in-process retry allows belongs to the delay tiers.
                guard let error = error as? ProviderError, error.kind == .transient else { return false }
                return (error.retryAfter ?? .zero) <= endpoint.retry.maxDelay
            },
            retryAfter: { ($0 as? ProviderError)?.retryAfter }
        ) {
            attempt += 1
            try await endpoint.rateLimiter.acquire()
            let response = try await send(path, contentType: contentType, body: body, headers: extra, attempt: attempt)
            guard (200..<300).contains(response.status) else {
                let error = rejected(response)
                logger.warning(
                    "provider.request.rejected",
                    metadata: [
                        "provider": "\(provider)", "http.path": "\(path)", "http.status": "\(response.status)",
                        "provider.error_code": "\(error.code)", "provider.attempt": "\(attempt)",
                    ])
                throw error
            }
            return response
        }
    }

    private func send(_ path: String, contentType: String, body: [UInt8], headers extra: [(String, String)], attempt: Int) async throws -> Response {
        // Inside an event's trace, each attempt is a client span of it (exported when span
        // export is on) and the provider gets it as `traceparent`.
        guard let parent = TraceContext.current else {
            return try await send(path, contentType: contentType, body: body, headers: extra, attempt: attempt, trace: nil)
        }
        return try await TraceContext.withSpan("\(provider) POST \(path)", ofKind: .client, parent: parent) { trace in
            try await send(path, contentType: contentType, body: body, headers: extra, attempt: attempt, trace: trace)
        }
    }

    private func send(
        _ path: String, contentType: String, body: [UInt8], headers extra: [(String, String)], attempt: Int, trace: TraceContext?
    ) async throws -> Response {
        var request = HTTPClientRequest(url: endpoint.url(path))
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(endpoint.apiKey.value)")
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "warren")
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let trace {
            request.headers.add(name: "traceparent", value: trace.traceparent)
            if let state = trace.state { request.headers.add(name: "tracestate", value: state) }
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let started = ContinuousClock.now
        do {
            let response = try await client.execute(request, deadline: .now() + .nanoseconds(endpoint.timeout.nanosecondsTotal))
            let bytes: ByteBuffer
            do {
                bytes = try await response.body.collect(upTo: 1 << 20)
            } catch where (200..<300).contains(Int(response.status.code)) {
                // Accepted: the status is the outcome, whatever happens to the body.
                bytes = ByteBuffer()
            }
            record(status: "\(response.status.code)", since: started)
            logger.debug(
                "provider.request.answered",
                metadata: [
                    "provider": "\(provider)", "http.path": "\(path)", "http.status": "\(response.status.code)",
                    "provider.attempt": "\(attempt)", "duration": "\(ContinuousClock.now - started)",
                ])
            return Response(status: Int(response.status.code), headers: response.headers, body: Array(buffer: bytes))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let timeout = (error as? HTTPClientError).map { [.deadlineExceeded, .readTimeout, .connectTimeout].contains($0) } ?? false
            record(status: timeout ? "timeout" : "connection_error", since: started)
            let what = timeout ? "no answer from \(path) within \(endpoint.timeout)" : "connection to \(path) failed or dropped: \(error)"
            if idempotent || Self.neverSent(error) {
                throw ProviderError(.transient, provider: provider, code: timeout ? "timeout" : "connection", what)
            }
            // The request may have been processed, and repeating it is not safe.
            throw ProviderError(.outcomeUnknown, provider: provider, code: "outcome-unknown", "\(what); it may have been processed")
        }
    }

    /// True for the failures that happen before a request is written: no connection could
    /// be made (refused, unreachable, timed out connecting, or still none when the
    /// deadline came). Anything else may have happened after the provider got it.
    static func neverSent(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPClientError: return error == .connectTimeout || error == .getConnectionFromPoolTimeout
        case is NIOConnectionError: return true
        // Only a connect is refused (a reset after the request is ECONNRESET/EPIPE); an
        // unreachable host or network can also be reported on an established socket.
        case let error as IOError: return error.errnoCode == ECONNREFUSED
        case ChannelError.connectTimeout: return true
        default: return false
        }
    }

    /// `warren_provider_requests_total{provider, status}` (the HTTP status, `timeout` or
    /// `connection_error`) and `warren_provider_request_duration_seconds{provider}`.
    private func record(status: String, since started: ContinuousClock.Instant) {
        Counter(label: "warren_provider_requests_total", dimensions: [("provider", provider), ("status", status)]).increment()
        Timer(label: "warren_provider_request_duration_seconds", dimensions: [("provider", provider)]).record(duration: ContinuousClock.now - started)
    }
}

extension ProviderError {
    /// The usual reading of an HTTP error status: 429 (with its wait), 408 and 5xx are
    /// transient, any other 4xx permanent.
    static func http(provider: String, _ response: ProviderCall.Response, code: String?, message: String?, retryAfter: Duration? = nil) -> ProviderError {
        let status = response.status
        let transient = status == 429 || status == 408 || status >= 500
        let wait = retryAfter ?? (status == 429 ? response.headers.first(name: "Retry-After").flatMap(Double.init).map { Duration.seconds($0) } : nil)
        return ProviderError(
            transient ? .transient : .permanent, provider: provider, status: status, code: code ?? "http_\(status)",
            message ?? "HTTP \(status)", retryAfter: wait)
    }
}

extension Duration {
    fileprivate var nanosecondsTotal: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
