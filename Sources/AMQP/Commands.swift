/// Work handed to the I/O thread. Each carries what it needs to report its outcome.
enum Command: Sendable {
    case publish(PublishRequest)
    case call(Call)
    case settle(Settlement)
    case registerChannel(id: UInt16, confirms: Bool, handle: ChannelHandle, done: @Sendable (AMQPError?) -> Void)
    case closeChannel(id: UInt16, done: @Sendable () -> Void)
    case close(done: @Sendable () -> Void)
}

extension Command {
    /// Sent without waiting for an answer on the I/O thread (publishes, acks): these may
    /// be corked together. Everything else is a synchronous method.
    var isOneWay: Bool {
        switch self {
        case .publish, .settle: true
        case .call, .registerChannel, .closeChannel, .close: false
        }
    }
}

/// A class: it passes through the mailbox and the loop's command handling, and copying
/// one reference is cheaper than copying (retaining) every field of each publish.
final class PublishRequest: Sendable {
    let channel: UInt16
    let exchange: String
    let routingKey: String
    let mandatory: Bool
    let properties: AMQPProperties
    let body: [UInt8]
    let timeout: Duration
    /// Set by the I/O thread when it first takes the request (one clock read per batch of
    /// commands rather than one per publish), and only touched there.
    nonisolated(unsafe) var deadline: ContinuousClock.Instant?
    let done: @Sendable (Result<Void, AMQPError>) -> Void

    init(
        channel: UInt16, exchange: String, routingKey: String, mandatory: Bool, properties: AMQPProperties, body: [UInt8],
        timeout: Duration, done: @escaping @Sendable (Result<Void, AMQPError>) -> Void
    ) {
        self.channel = channel
        self.exchange = exchange
        self.routingKey = routingKey
        self.mandatory = mandatory
        self.properties = properties
        self.body = body
        self.timeout = timeout
        self.done = done
    }
}

/// A synchronous broker method for a channel and where its answer goes. While the
/// channel or connection is down it waits, until `deadline`.
struct Call: Sendable {
    var channel: UInt16
    var method: ChannelMethod
    var deadline: ContinuousClock.Instant
    var reply: @Sendable (Result<MethodReply, AMQPError>) -> Void
}

/// An ack, nack or reject. Like every AMQP client's, it is not answered by the broker:
/// the caller returns once it is queued. If the channel was reopened in between, it is
/// dropped: the broker has already requeued those deliveries.
struct Settlement: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case ack, nack(requeue: Bool), reject(requeue: Bool) }
    var channel: UInt16
    var generation: UInt64
    var deliveryTag: UInt64
    var multiple: Bool
    var kind: Kind
}

struct ConsumerRegistration: Sendable {
    var channel: UInt16
    var queue: String
    var tag: String
    var exclusive: Bool
    var arguments: AMQPTable
    /// Bodies larger than this are not kept (see `AMQPDelivery.discardedBodySize`).
    var maxBodySize: Int?
    var deliveries: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
}
