/// The topology declared through a connection, replayed in order on a new connection:
/// exchanges, named queues and bindings. Deleting an exchange or queue forgets it and
/// the bindings that used it; a server-named queue (empty name) is never replayed (the
/// broker would name it differently).
struct RecoveryLog {
    enum Key: Hashable {
        case exchange(String)
        case queue(String)
        case binding(queue: String, exchange: String, routingKey: String, arguments: String)
    }

    private(set) var entries: [(key: Key, method: ChannelMethod)] = []

    /// What to re-declare, oldest first.
    var methods: [ChannelMethod] { entries.map(\.method) }

    /// Records the effect of `method`, which the broker just accepted.
    mutating func record(_ method: ChannelMethod) {
        switch method {
        case .declareExchange(let name, _, _, _, _, _):
            add(.exchange(name), method)
        case .declareQueue(let name, _, _, _, _) where !name.isEmpty:
            add(.queue(name), method)
        case .bindQueue(let queue, let exchange, let routingKey, let arguments):
            add(Self.bindingKey(queue, exchange, routingKey, arguments), method)
        case .unbindQueue(let queue, let exchange, let routingKey, let arguments):
            let key = Self.bindingKey(queue, exchange, routingKey, arguments)
            entries.removeAll { $0.key == key }
        case .deleteExchange(let name, _):
            entries.removeAll { entry in
                switch entry.key {
                case .exchange(let exchange), .binding(_, let exchange, _, _): exchange == name
                case .queue: false
                }
            }
        case .deleteQueue(let name, _, _):
            entries.removeAll { entry in
                switch entry.key {
                case .queue(let queue), .binding(let queue, _, _, _): queue == name
                case .exchange: false
                }
            }
        case .declareQueue, .queueInfo, .purgeQueue, .qos, .consume, .cancel, .get:
            break
        }
    }

    /// A re-declaration replaces the earlier one in place (its latest arguments win).
    private mutating func add(_ key: Key, _ method: ChannelMethod) {
        if let index = entries.firstIndex(where: { $0.key == key }) {
            entries[index].method = method
        } else {
            entries.append((key, method))
        }
    }

    private static func bindingKey(_ queue: String, _ exchange: String, _ routingKey: String, _ arguments: AMQPTable) -> Key {
        .binding(
            queue: queue, exchange: exchange, routingKey: routingKey,
            arguments: arguments.keys.sorted().map { "\($0)=\(arguments[$0]!)" }.joined(separator: ","))
    }
}
