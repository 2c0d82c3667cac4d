import CRabbitMQ

/// What the I/O thread knows about one channel: confirm bookkeeping, consumers and the
/// content being assembled from method + header + body frames. I/O thread only.
final class ChannelState {
    let id: UInt16
    let confirms: Bool
    var prefetch: UInt16?
    var open = false
    /// Changes whenever the channel is (re)opened: delivery tags are only valid within one.
    var epoch: UInt64 = 0
    var nextSequence: UInt64 = 1
    /// No unconfirmed publish has a lower sequence number; lets `multiple` acks walk only
    /// what they settle.
    var lowestUnconfirmed: UInt64 = 1
    var unconfirmed: [UInt64: PendingConfirm] = [:]
    var consumers: [String: ConsumerRegistration] = [:]
    var content: IncomingContent?

    init(id: UInt16, confirms: Bool) {
        self.id = id
        self.confirms = confirms
    }

    /// A fresh channel at the broker starts counting publishes at 1 again.
    func reopened(epoch: UInt64) {
        self.epoch = epoch
        open = true
        nextSequence = 1
        lowestUnconfirmed = 1
        content = nil
    }

    /// Removes and returns what an ack or nack with `tag` settles.
    func settle(upTo tag: UInt64, multiple: Bool) -> [PendingConfirm] {
        var settled: [PendingConfirm] = []
        if multiple {
            var sequence = lowestUnconfirmed
            while sequence <= tag {
                if let pending = unconfirmed.removeValue(forKey: sequence) { settled.append(pending) }
                sequence += 1
            }
        } else if let pending = unconfirmed.removeValue(forKey: tag) {
            settled.append(pending)
        }
        while lowestUnconfirmed < nextSequence, unconfirmed[lowestUnconfirmed] == nil { lowestUnconfirmed += 1 }
        return settled
    }

    func takeAllUnconfirmed() -> [PendingConfirm] {
        let all = unconfirmed.keys.sorted().map { unconfirmed[$0]! }
        unconfirmed.removeAll()
        lowestUnconfirmed = nextSequence
        return all
    }
}

struct PendingConfirm {
    var deadline: ContinuousClock.Instant
    var timeout: Duration
    var returned: AMQPReturnedMessage?
    var done: @Sendable (Result<Void, AMQPError>) -> Void
}

/// A message arriving as method, header and body frames on one channel.
struct IncomingContent {
    enum Kind {
        case delivery(tag: UInt64, redelivered: Bool, exchange: String, routingKey: String, consumerTag: String)
        case returned(AMQPReturnedMessage)
    }

    var kind: Kind
    var properties = AMQPProperties()
    var bodySize: Int?
    var body: [UInt8] = []

    /// True once the header arrived and the body reached the announced size.
    var isComplete: Bool { bodySize.map { body.count >= $0 } ?? false }

    mutating func header(_ properties: AMQPProperties, bodySize: Int) {
        self.properties = properties
        self.bodySize = bodySize
        body.reserveCapacity(bodySize)
    }

    mutating func append(_ fragment: UnsafeRawBufferPointer) {
        body.append(contentsOf: fragment)
    }
}
