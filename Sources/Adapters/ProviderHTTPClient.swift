import AsyncHTTPClient

extension HTTPClient {
    /// The client provider calls use unless given another: AsyncHTTPClient's defaults, but
    /// redirects are never followed. A provider API does not redirect a POST; a 3xx means
    /// a wrong base URL or someone in the middle, and following it would send the API key
    /// there (possibly over plain http). It fails the call as a permanent `http_3xx` error.
/// Its own tracing is off: Warren sends one `traceparent`, its own span's.
    /// Lives as long as the process, like `HTTPClient.shared`.
    public static let providers: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // Warren makes the client span and the `traceparent` itself (ProviderCall); the
        // client's own tracing would add a second span and a second header.
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
