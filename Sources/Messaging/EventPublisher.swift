import AMQP
import WarrenCore

/// How an `EventPublisher` publishes: the knobs an integrator expects from an API client.
public struct PublishOptions: Sendable {
    public var exchange: String
    /// How long one attempt may wait for the broker's confirm.
    public var timeout: Duration
    /// Attempts, backoff (linear or exponential) and its cap. Default: one attempt.
    public var retry: RetryPolicy
    /// Which failures another attempt may fix. Default: `EventPublisher.isTransient`.
    public var shouldRetry: @Sendable (any Error) -> Bool
    /// At most so many publishes per interval, shared by everyone using this limiter.
    public var rateLimit: RateLimiter?

    public init(
        exchange: String = "events", timeout: Duration = .seconds(10), retry: RetryPolicy = .never,
        shouldRetry: @escaping @Sendable (any Error) -> Bool = EventPublisher.isTransient, rateLimit: RateLimiter? = nil
    ) {
        self.exchange = exchange
        self.timeout = timeout
        self.retry = retry
        self.shouldRetry = shouldRetry
        self.rateLimit = rateLimit
    }
}

/// Puts events on the exchange and returns only once the broker confirmed them. Events
/// are validated against the catalog first (rejected before anything is sent), published
/// mandatory (an event no queue is bound for is an error, not a silent drop) and
/// persistent, with the CloudEvents → AMQP mapping of `CloudEvent.amqpMessage`.
public struct EventPublisher: Sendable {
    public let channel: AMQPChannel
    public let catalog: EventCatalog?
    public let options: PublishOptions

    public init(channel: AMQPChannel, catalog: EventCatalog?, options: PublishOptions = PublishOptions()) {
        self.channel = channel
        self.catalog = catalog
        self.options = options
    }

    /// Throws `EventError` for an invalid event, `AMQPError` when the broker did not
    /// confirm it (returned, nacked, timed out, connection lost) after all attempts.
    public func publish(_ event: CloudEvent, correlationID: String? = nil, traceparent: String? = nil) async throws {
        try validate(event)
        let message = event.amqpMessage(correlationID: correlationID, traceparent: traceparent)
        try await options.retry.run(shouldRetry: options.shouldRetry) {
            try await options.rateLimit?.acquire()
            try await channel.publish(
                message.body, exchange: options.exchange, routingKey: message.routingKey, properties: message.properties,
                mandatory: true, timeout: options.timeout)
        }
    }

    /// Publishes every event with at most `window` awaiting their confirms; the results
    /// are in the order of `events`.
    public func publish(_ events: [CloudEvent], window: Int = 256) async -> [Result<Void, any Error>] {
        var results = [Result<Void, any Error>](repeating: .success(()), count: events.count)
        await withTaskGroup(of: (Int, Result<Void, any Error>).self) { group in
            var next = 0
            func startNext() {
                guard next < events.count else { return }
                let index = next
                next += 1
                group.addTask {
                    do {
                        try await publish(events[index])
                        return (index, .success(()))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for _ in 0..<max(1, window) { startNext() }
            while let (index, result) = await group.next() {
                results[index] = result
                startNext()
            }
        }
        return results
    }

    /// Publishes `events` in their order (one after the other into the channel, so they
    /// reach a queue in that order) without waiting between them, then waits for every
    /// confirm; throws the first failure, after all have settled. One attempt each; the
    /// events must have passed the catalog already (`validate`).
    public func publishInOrder(_ events: [CloudEvent], correlationID: String? = nil) async throws {
        let confirmations = events.map { event in
            let message = event.amqpMessage(correlationID: correlationID)
            return channel.send(
                message.body, exchange: options.exchange, routingKey: message.routingKey, properties: message.properties, mandatory: true,
                timeout: options.timeout)
        }
        var firstFailure: (any Error)?
        for confirmation in confirmations {
            do {
                try await confirmation.confirmed()
            } catch {
                firstFailure = firstFailure ?? error
            }
        }
        if let firstFailure { throw firstFailure }
    }

    /// What `publish` checks before sending: the catalog, and that the event fits AMQP.
    public func validate(_ event: CloudEvent) throws(EventError) {
        try catalog?.validate(event)
        try event.validateForAMQP()
    }

    /// Failures that another attempt may fix: lost connection, timeout, nack. Not:
    /// unroutable (returned), refused by the broker (404, 403), invalid events.
    @Sendable public static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? AMQPError else { return false }
        return [.connectionLost, .timeout, .publishNacked].contains(error.code)
    }
}
