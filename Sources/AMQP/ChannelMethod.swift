/// A synchronous broker method on a channel, as a value: what `AMQPChannel` asks the I/O
/// thread to run, what the state machine records for recovery, and what the driver turns
/// into rabbitmq-c calls (`RabbitSession.perform`). No closures cross to the I/O thread.
enum ChannelMethod: Sendable {
    case declareExchange(name: String, type: String, durable: Bool, autoDelete: Bool, internal: Bool, arguments: AMQPTable)
    case deleteExchange(name: String, ifUnused: Bool)
    case declareQueue(name: String, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: AMQPTable)
    /// `queue.declare` with `passive`: the queue's counts, or 404 if it does not exist.
    case queueInfo(name: String)
    case deleteQueue(name: String, ifUnused: Bool, ifEmpty: Bool)
    case purgeQueue(name: String)
    case bindQueue(queue: String, exchange: String, routingKey: String, arguments: AMQPTable)
    case unbindQueue(queue: String, exchange: String, routingKey: String, arguments: AMQPTable)
    case qos(prefetch: UInt16)
    case consume(ConsumerRegistration)
    case cancel(consumerTag: String)
    case get(queue: String)

    /// Names the method in errors and logs.
    var context: String {
        switch self {
        case .declareExchange(let name, _, _, _, _, _): "exchange.declare \(name)"
        case .deleteExchange(let name, _): "exchange.delete \(name)"
        case .declareQueue(let name, _, _, _, _): "queue.declare \(name)"
        case .queueInfo(let name): "queue.declare (passive) \(name)"
        case .deleteQueue(let name, _, _): "queue.delete \(name)"
        case .purgeQueue(let name): "queue.purge \(name)"
        case .bindQueue(let queue, _, _, _): "queue.bind \(queue)"
        case .unbindQueue(let queue, _, _, _): "queue.unbind \(queue)"
        case .qos(let prefetch): "basic.qos \(prefetch)"
        case .consume(let registration): "basic.consume on \(registration.queue)"
        case .cancel(let tag): "basic.cancel \(tag)"
        case .get(let queue): "basic.get \(queue)"
        }
    }
}

/// What a `ChannelMethod` answers.
enum MethodReply: Sendable {
    case done
    case queue(AMQPQueueInfo)
    /// Messages deleted or purged.
    case count(UInt32)
    /// `basic.get`: nil when the queue was empty.
    case delivery(AMQPDelivery?)
}

extension RabbitSession {
    /// Runs `method` on `channel` and returns the broker's answer. I/O thread only.
    func perform(_ method: ChannelMethod, channel: UInt16, epoch: UInt64) throws(AMQPError) -> MethodReply {
        try flush()
        switch method {
        case .declareExchange(let name, let type, let durable, let autoDelete, let isInternal, let arguments):
            try declareExchange(channel, name, type: type, durable: durable, autoDelete: autoDelete, isInternal: isInternal, arguments: arguments)
            return .done
        case .deleteExchange(let name, let ifUnused):
            try deleteExchange(channel, name, ifUnused: ifUnused)
            return .done
        case .declareQueue(let name, let durable, let exclusive, let autoDelete, let arguments):
            return .queue(try declareQueue(
                channel, name, passive: false, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments))
        case .queueInfo(let name):
            return .queue(try declareQueue(channel, name, passive: true, durable: false, exclusive: false, autoDelete: false, arguments: [:]))
        case .deleteQueue(let name, let ifUnused, let ifEmpty):
            return .count(try deleteQueue(channel, name, ifUnused: ifUnused, ifEmpty: ifEmpty))
        case .purgeQueue(let name):
            return .count(try purgeQueue(channel, name))
        case .bindQueue(let queue, let exchange, let routingKey, let arguments):
            try bindQueue(channel, queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
            return .done
        case .unbindQueue(let queue, let exchange, let routingKey, let arguments):
            try unbindQueue(channel, queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
            return .done
        case .qos(let prefetch):
            try qos(channel, prefetch: prefetch)
            return .done
        case .consume(let registration):
            try consume(channel, queue: registration.queue, tag: registration.tag, exclusive: registration.exclusive, arguments: registration.arguments)
            return .done
        case .cancel(let tag):
            try cancel(channel, tag: tag)
            return .done
        case .get(let queue):
            return .delivery(try get(channel, queue: queue, generation: epoch))
        }
    }
}
