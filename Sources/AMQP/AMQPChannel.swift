import Foundation

/// A channel on an `AMQPConnection`. It survives reconnects: after the connection comes
/// back the channel is re-opened with the same settings and its consumers resume.
/// Every method throws `AMQPError`.
public struct AMQPChannel: Sendable {
    public let id: UInt16
    public let connection: AMQPConnection
    let handle: ChannelHandle

    init(id: UInt16, connection: AMQPConnection, handle: ChannelHandle) {
        self.id = id
        self.connection = connection
        self.handle = handle
    }

    private var loop: IOLoop { connection.loop }

    // MARK: Topology (re-declared after a reconnect)

    public func declareExchange(
        _ name: String, type: String = "topic", durable: Bool = true, autoDelete: Bool = false,
        internal: Bool = false, arguments: AMQPTable = [:]
    ) async throws {
        _ = try await call(.declareExchange(name: name, type: type, durable: durable, autoDelete: autoDelete, internal: `internal`, arguments: arguments))
    }

    /// Deletes an exchange; it and the bindings to it are no longer re-declared.
    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws {
        _ = try await call(.deleteExchange(name: name, ifUnused: ifUnused))
    }

    /// Declares a queue; a server-named queue (empty `name`) is not re-declared on reconnect.
    @discardableResult
    public func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: AMQPTable = [:]
    ) async throws -> AMQPQueueInfo {
        try await queue(.declareQueue(name: name, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments))
    }

    /// The queue's message and consumer counts; `channelClosed` with 404 if it does not exist.
    public func queueInfo(_ name: String) async throws -> AMQPQueueInfo {
        try await queue(.queueInfo(name: name))
    }

    /// Deletes a queue and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        try await count(.deleteQueue(name: name, ifUnused: ifUnused, ifEmpty: ifEmpty))
    }

    /// Removes every ready message and returns how many there were.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try await count(.purgeQueue(name: name))
    }

    public func bindQueue(_ queue: String, to exchange: String, routingKey: String, arguments: AMQPTable = [:]) async throws {
        _ = try await call(.bindQueue(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments))
    }

    public func unbindQueue(_ queue: String, from exchange: String, routingKey: String, arguments: AMQPTable = [:]) async throws {
        _ = try await call(.unbindQueue(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments))
    }

    // MARK: Publishing

    /// Publishes and returns once the broker has confirmed the message (on a confirm
    /// channel). Fails, never silently drops: `invalidMessage` (not encodable, e.g. a
    /// property over 255 bytes; checked before anything is sent), `publishNacked`,
    /// `publishReturned` (mandatory and unroutable), `channelClosed` (e.g. 404 for a
    /// missing exchange), `connectionLost`, or `timeout` when no confirm came in `timeout`
    /// (default: the connection's `publishTimeout`), including time spent blocked by a
    /// resource alarm or reconnecting.
    /// The timeout runs from when the I/O thread takes the publish: microseconds after the
    /// call, unless that thread is inside a blocking connect attempt (at most the
    /// configured `connection_timeout`).
    public func publish(
        _ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties = AMQPProperties(),
        mandatory: Bool = false, timeout: Duration? = nil
    ) async throws {
        try WireLimits.checkPublish(exchange: exchange, routingKey: routingKey, properties: properties)
        let timeout = timeout ?? connection.configuration.publishTimeout
        let (id, metrics, started) = (self.id, loop.metrics, ContinuousClock.now)
        // Unchecked: the I/O thread calls `done` exactly once for every request it is
        // given (confirm, failure, timeout or close), and this is the hottest path.
        let result: Result<Void, AMQPError> = await withUnsafeContinuation { continuation in
            loop.submit(.publish(PublishRequest(
                channel: id, exchange: exchange, routingKey: routingKey, mandatory: mandatory, properties: properties,
                body: body, timeout: timeout,
                done: { result in
                    metrics.published(result, since: started)
                    continuation.resume(returning: result)
                })))
        }
        try result.get()
    }

    /// Publishes without waiting: the message is queued for the I/O thread at once, and
    /// the returned confirmation settles exactly as `publish` would return or throw. One
    /// task can keep a sliding window of publishes in flight this way (send, and await the
    /// oldest confirmation once the window is full); an `ack multiple` from the broker
    /// then settles many confirmations for a single wake-up of that task.
    public func send(
        _ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties = AMQPProperties(),
        mandatory: Bool = false, timeout: Duration? = nil
    ) -> PublishConfirmation {
        let confirmation = PublishConfirmation()
        do {
            try WireLimits.checkPublish(exchange: exchange, routingKey: routingKey, properties: properties)
        } catch {
            confirmation.settle(.failure(error))
            return confirmation
        }
        let (metrics, started) = (loop.metrics, ContinuousClock.now)
        loop.submit(.publish(PublishRequest(
            channel: id, exchange: exchange, routingKey: routingKey, mandatory: mandatory, properties: properties,
            body: body, timeout: timeout ?? connection.configuration.publishTimeout,
            done: { result in
                metrics.published(result, since: started)
                confirmation.settle(result)
            })))
        return confirmation
    }

    // MARK: Consuming

    /// How many unacknowledged deliveries the broker may send to each consumer on this channel.
    public func setPrefetch(_ count: UInt16) async throws {
        _ = try await call(.qos(prefetch: count))
    }

    /// Starts a consumer. Deliveries arrive in order and must be acked, nacked or rejected
    /// on this channel. The sequence ends when the consumer is cancelled or the connection
    /// closed, and throws `consumerCancelled` if the broker cancels it (queue deleted).
    /// A body over `maxBodySize` is never held in memory: its frames are dropped as they
    /// arrive and the delivery comes with an empty body and `discardedBodySize`.
    public func consume(
        queue: String, prefetch: UInt16? = nil, exclusive: Bool = false, arguments: AMQPTable = [:], maxBodySize: Int? = nil
    ) async throws -> AMQPConsumer {
        if let prefetch { try await setPrefetch(prefetch) }
        let tag = "warren.\(queue).\(UUID().uuidString.prefix(8).lowercased())"
        let (deliveries, continuation) = AsyncThrowingStream.makeStream(of: AMQPDelivery.self, throwing: (any Error).self)
        _ = try await call(.consume(ConsumerRegistration(
            channel: id, queue: queue, tag: tag, exclusive: exclusive, arguments: arguments, maxBodySize: maxBodySize,
            deliveries: continuation)))
        // A consuming task that is cancelled stops the consumer at the broker too; nobody
        // waits for that, so it is queued straight to the I/O thread.
        let (loop, id) = (self.loop, self.id)
        continuation.onTermination = { termination in
            guard case .cancelled = termination else { return }
            loop.submit(.call(Call(channel: id, method: .cancel(consumerTag: tag), deadline: .now + loop.configuration.rpcTimeout, reply: { _ in })))
        }
        return AMQPConsumer(tag: tag, queue: queue, deliveries: deliveries, channel: self)
    }

    /// Stops a consumer: its delivery sequence ends; deliveries already in flight to it
    /// are returned to the queue.
    public func cancel(consumerTag tag: String) async throws {
        _ = try await call(.cancel(consumerTag: tag))
    }

    /// `basic.get`: one message from `queue`, or nil if it is empty.
    public func get(queue: String) async throws -> AMQPDelivery? {
        guard case .delivery(let delivery) = try await call(.get(queue: queue)) else { throw Self.unexpectedReply(.get(queue: queue)) }
        return delivery
    }

    // Settling returns once the ack is queued for the I/O thread, like basic.ack in every
    // AMQP client (the broker never answers it). Queued acks go out together, as one
    // `multiple` ack when they settle the oldest deliveries. A delivery from before a
    // reconnect or channel reopen throws `staleDelivery`: the broker has requeued it.

    public func ack(_ delivery: AMQPDelivery, multiple: Bool = false) throws {
        try settle(delivery, multiple: multiple, .ack)
    }

    public func nack(_ delivery: AMQPDelivery, multiple: Bool = false, requeue: Bool = true) throws {
        try settle(delivery, multiple: multiple, .nack(requeue: requeue))
    }

    /// Rejects one delivery; without `requeue` it goes to the queue's dead-letter exchange.
    public func reject(_ delivery: AMQPDelivery, requeue: Bool = false) throws {
        try settle(delivery, multiple: false, .reject(requeue: requeue))
    }

    private func settle(_ delivery: AMQPDelivery, multiple: Bool, _ kind: Settlement.Kind) throws {
        guard delivery.channelID == id else {
            throw AMQPError(.library, "delivery \(delivery.deliveryTag) came on channel \(delivery.channelID), not \(id)")
        }
        guard delivery.generation == handle.epoch.load(ordering: .acquiring) else {
            throw AMQPError(.staleDelivery, "delivery \(delivery.deliveryTag) belongs to an earlier connection or channel; the broker has requeued it")
        }
        loop.submit(.settle(Settlement(
            channel: id, generation: delivery.generation, deliveryTag: delivery.deliveryTag, multiple: multiple, kind: kind)))
    }

    /// Closes the channel; its unconfirmed publishes fail with `.closed`.
    public func close() async {
        await withCheckedContinuation { continuation in
            loop.submit(.closeChannel(id: id) { continuation.resume() })
        }
    }

    // MARK: Plumbing

    /// Runs a synchronous broker method on the I/O thread. While disconnected it waits for
    /// the reconnect, up to the connection's `rpcTimeout`.
    private func call(_ method: ChannelMethod) async throws -> MethodReply {
        let (loop, id) = (self.loop, self.id)
        let result: Result<MethodReply, AMQPError> = await withCheckedContinuation { continuation in
            loop.submit(.call(Call(
                channel: id, method: method, deadline: .now + loop.configuration.rpcTimeout,
                reply: { continuation.resume(returning: $0) })))
        }
        return try result.get()
    }

    private func queue(_ method: ChannelMethod) async throws -> AMQPQueueInfo {
        guard case .queue(let info) = try await call(method) else { throw Self.unexpectedReply(method) }
        return info
    }

    private func count(_ method: ChannelMethod) async throws -> UInt32 {
        guard case .count(let count) = try await call(method) else { throw Self.unexpectedReply(method) }
        return count
    }

    private static func unexpectedReply(_ method: ChannelMethod) -> AMQPError {
        AMQPError(.library, "\(method.context): unexpected reply")
    }
}

/// The deliveries of one consumer, in order.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    public let tag: String
    public let queue: String
    let deliveries: AsyncThrowingStream<AMQPDelivery, any Error>
    public let channel: AMQPChannel

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        deliveries.makeAsyncIterator()
    }

    public func cancel() async throws {
        try await channel.cancel(consumerTag: tag)
    }
}
