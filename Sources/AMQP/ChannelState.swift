import CRabbitMQ
import Synchronization

/// The part of a channel's state that callers read without asking the I/O thread: the
/// epoch its delivery tags belong to (0 while closed), so a stale ack is refused at once.
final class ChannelHandle: Sendable {
    let epoch = Atomic<UInt64>(0)
}

/// What the I/O thread knows about one channel: confirm bookkeeping, consumers and the
/// content being assembled from method + header + body frames. I/O thread only.
final class ChannelState {
    let id: UInt16
    let confirms: Bool
    let handle: ChannelHandle
    var prefetch: UInt16?
    var open = false {
        didSet {
            guard !open else { return }
            handle.epoch.store(0, ordering: .releasing)
            // Tags restart at 1 on the next channel: an ack queued now could settle a
            // different message there. The broker requeues these deliveries anyway.
            queuedAcks.removeAll()
        }
    }
    /// Changes whenever the channel is (re)opened: delivery tags are only valid within one.
    private(set) var epoch: UInt64 = 0
    /// Delivery tags handed out (to consumers or `basic.get`) and not yet settled.
    var unsettled = UnsettledTags()
    var nextSequence: UInt64 = 1
    var unconfirmed = UnconfirmedPublishes()
    var consumers: [String: ConsumerRegistration] = [:]
    var content: IncomingContent?
    /// Single acks queued by callers since the last flush, all of the current epoch.
    private var queuedAcks: [UInt64] = []

    init(id: UInt16, confirms: Bool, handle: ChannelHandle = ChannelHandle()) {
        self.id = id
        self.confirms = confirms
        self.handle = handle
    }

    /// A fresh channel at the broker starts counting publishes at 1 again.
    func reopened(epoch: UInt64) {
        self.epoch = epoch
        open = true
        handle.epoch.store(epoch, ordering: .releasing)
        nextSequence = 1
        unconfirmed = UnconfirmedPublishes()
        content = nil
        unsettled = UnsettledTags()
        queuedAcks.removeAll()
    }

    // MARK: Settling deliveries

    /// Whether a settlement of a delivery from `epoch` may go out on this channel now: the
    /// channel is open and has not been reopened since (tags are per channel instance).
    func accepts(epoch delivery: UInt64) -> Bool {
        open && epoch == delivery
    }

    /// Queues a single ack of a delivery from `epoch`, to go out with the others of this
    /// batch of commands (see `takeQueuedAcks`). False, and nothing queued, if it is stale.
    func queueAck(_ tag: UInt64, epoch delivery: UInt64) -> Bool {
        guard accepts(epoch: delivery) else { return false }
        queuedAcks.append(tag)
        return true
    }

    var hasQueuedAcks: Bool { !queuedAcks.isEmpty }

    /// The frames that send the queued acks, which leave the bookkeeping: one `multiple`
    /// ack when they settle exactly the oldest unsettled deliveries (the usual in-order
    /// consumer), else one ack per tag in ascending order.
    func takeQueuedAcks() -> AckFrames {
        guard open, !queuedAcks.isEmpty else { return .none }
        var tags = queuedAcks
        queuedAcks.removeAll(keepingCapacity: true)
        tags.sort()
        if tags.count > 1, unsettled.hasPrefix(tags) {
            unsettled.removePrefix(tags.count)
            return .multiple(upTo: tags.last!)
        }
        for tag in tags { unsettled.remove(tag) }
        return .single(tags)
    }

    /// Records a publish just sent with sequence number `nextSequence`.
    func sent(_ pending: PendingConfirm) {
        unconfirmed.append(pending, sequence: nextSequence)
        nextSequence += 1
    }

    /// Removes and returns what an ack or nack with `tag` settles.
    func settle(upTo tag: UInt64, multiple: Bool) -> [PendingConfirm] {
        multiple ? unconfirmed.removeAll(upTo: tag) : unconfirmed.remove(tag).map { [$0] } ?? []
    }

    func takeAllUnconfirmed() -> [PendingConfirm] {
        unconfirmed.removeAll(upTo: .max)
    }
}

/// Unconfirmed publishes by sequence number. The numbers are handed out in order, so an
/// array of slots from the lowest unconfirmed one does a dictionary's job without hashing:
/// `multiple` acks take a prefix, single acks clear a slot.
struct UnconfirmedPublishes {
    private var slots: [PendingConfirm?] = []
    private var head = 0
    /// The sequence number of `slots[head]`: none lower is unconfirmed.
    private(set) var lowest: UInt64 = 1
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// `sequence` must follow the last one appended (publishes are numbered in order).
    mutating func append(_ pending: PendingConfirm, sequence: UInt64) {
        if count == 0 {
            slots.removeAll(keepingCapacity: true)
            head = 0
            lowest = sequence
        }
        precondition(sequence == lowest + UInt64(slots.count - head), "publish sequence numbers out of order")
        slots.append(pending)
        count += 1
    }

    subscript(sequence: UInt64) -> PendingConfirm? {
        index(of: sequence).flatMap { slots[$0] }
    }

    /// Notes that the broker returned the publish (its confirm follows); false if no
    /// unconfirmed publish has that number.
    mutating func markReturned(_ sequence: UInt64, _ returned: AMQPReturnedMessage) -> Bool {
        guard let index = index(of: sequence), slots[index] != nil else { return false }
        slots[index]!.returned = returned
        return true
    }

    mutating func remove(_ sequence: UInt64) -> PendingConfirm? {
        guard let index = index(of: sequence), let pending = slots[index].take() else { return nil }
        count -= 1
        trim()
        return pending
    }

    /// Everything up to and including `sequence`, in order.
    mutating func removeAll(upTo sequence: UInt64) -> [PendingConfirm] {
        var removed: [PendingConfirm] = []
        while head < slots.count, lowest <= sequence {
            // Moved out, not copied: no retain and release of each callback.
            if let pending = slots[head].take() { removed.append(pending) }
            head += 1
            lowest += 1
        }
        count -= removed.count
        trim()
        return removed
    }

    /// Removes and returns those whose deadline passed.
    mutating func removeExpired(at now: ContinuousClock.Instant) -> [PendingConfirm] {
        var expired: [PendingConfirm] = []
        for index in head..<slots.count {
            guard let deadline = slots[index]?.deadline, deadline <= now else { continue }
            expired.append(slots[index].take()!)
        }
        count -= expired.count
        trim()
        return expired
    }

    private func index(of sequence: UInt64) -> Int? {
        guard sequence >= lowest, sequence - lowest < UInt64(slots.count - head) else { return nil }
        return head + Int(sequence - lowest)
    }

    /// Skips settled slots at the front and drops the dead prefix now and then.
    private mutating func trim() {
        while head < slots.count, slots[head] == nil {
            head += 1
            lowest += 1
        }
        if head == slots.count {
            slots.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= slots.count {
            slots.removeFirst(head)
            head = 0
        }
    }
}

/// Ascending delivery tags of one channel (the broker numbers deliveries 1, 2, 3, …).
/// Lets queued acks that settle the oldest deliveries go out as one `multiple` ack.
struct UnsettledTags {
    private var tags: [UInt64] = []
    private var head = 0

    var count: Int { tags.count - head }

    mutating func append(_ tag: UInt64) { tags.append(tag) }

    /// True when `sorted` is exactly the oldest `sorted.count` unsettled tags.
    func hasPrefix(_ sorted: [UInt64]) -> Bool {
        guard sorted.count <= count else { return false }
        for (offset, tag) in sorted.enumerated() where tags[head + offset] != tag { return false }
        return true
    }

    mutating func removePrefix(_ n: Int) {
        head += n
        compact()
    }

    mutating func remove(_ tag: UInt64) {
        var low = head, high = tags.count
        while low < high {
            let mid = (low + high) / 2
            if tags[mid] < tag { low = mid + 1 } else { high = mid }
        }
        guard low < tags.count, tags[low] == tag else { return }
        if low == head { head += 1 } else { tags.remove(at: low) }
        compact()
    }

    mutating func removeAll(upTo tag: UInt64) {
        while head < tags.count, tags[head] <= tag { head += 1 }
        compact()
    }

    private mutating func compact() {
        if head == tags.count {
            tags.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > tags.count {
            tags.removeFirst(head)
            head = 0
        }
    }
}

/// What to write for a channel's queued acks.
enum AckFrames: Equatable {
    case none
    /// One `basic.ack` with `multiple` set.
    case multiple(upTo: UInt64)
    /// One `basic.ack` per tag.
    case single([UInt64])
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
    var report = DecodeReport()
    /// The body is over the consumer's limit: its bytes are counted, not kept.
    var discarding = false
    var received = 0

    /// True once the header arrived and the body reached the announced size.
    var isComplete: Bool { bodySize.map { received >= $0 } ?? false }

    /// Reserves at most 1 MiB up front: the announced size is the sender's word. A body
    /// over `limit` is dropped as it arrives.
    mutating func header(_ properties: AMQPProperties, bodySize: Int, report: DecodeReport, limit: Int? = nil) {
        self.properties = properties
        self.bodySize = bodySize
        self.report = report
        discarding = limit.map { bodySize > $0 } ?? false
        if !discarding { body.reserveCapacity(min(bodySize, 1 << 20)) }
    }

    mutating func append(_ fragment: UnsafeRawBufferPointer) {
        received += fragment.count
        if !discarding { body.append(contentsOf: fragment) }
    }
}
