/// Everything a connection decides, with no I/O: which channels are open and in which
/// epoch, what waits (publishes while blocked or disconnected, methods while a channel is
/// closed), publisher confirms, ack coalescing, stale settlements, content assembly,
/// deadlines, what a lost connection or a closed channel fails, and what to re-declare.
///
/// `IOLoop` (the driver) feeds it commands, decoded frames and clock ticks, and carries
/// out what it answers: frames to write, completions to run, consumers to feed or end.
/// The machine never calls back into user code itself: completions are returned, so its
/// state is consistent whenever a caller's continuation runs. Unit tests drive it
/// directly (`ConnectionStateMachineTests`). One thread only (the driver's).
final class ConnectionStateMachine {
    static let controlChannel: UInt16 = 1

    enum Link: Equatable {
        /// Not connected yet, or lost and not back: commands wait.
        case disconnected
        case connected
        /// Closed by the application: nothing is accepted any more.
        case closed
    }

    /// Something to report to a caller once the machine is done changing state.
    enum Completion {
        case publish(@Sendable (Result<Void, AMQPError>) -> Void, Result<Void, AMQPError>)
        case method(@Sendable (Result<MethodReply, AMQPError>) -> Void, Result<MethodReply, AMQPError>)
        /// A consumer's delivery sequence ends, with an error or (nil) normally.
        case endConsumer(ConsumerRegistration, AMQPError?)

        func run() {
            switch self {
            case .publish(let done, let result): done(result)
            case .method(let reply, let result): reply(result)
            case .endConsumer(let consumer, nil): consumer.deliveries.finish()
            case .endConsumer(let consumer, let error?): consumer.deliveries.finish(throwing: error)
            }
        }
    }

    private(set) var link = Link.disconnected
    /// The broker's reason while it blocks publishing (a resource alarm).
    private(set) var blockedReason: String?
    private(set) var channels: [UInt16: ChannelState] = [:]
    private(set) var recovery = RecoveryLog()
    private var epochs: UInt64 = 0
    private var heldPublishes: [PublishRequest] = []
    private var heldCalls: [Call] = []
    /// Channels with single acks queued since the last `takeQueuedAcks`.
    private var channelsWithAcks: Set<UInt16> = []

    init() {
        channels[Self.controlChannel] = ChannelState(id: Self.controlChannel, confirms: false)
    }

    var isHoldingWork: Bool { !heldPublishes.isEmpty || !heldCalls.isEmpty }
    var heldPublishCount: Int { heldPublishes.count }

    // MARK: Connection and channel lifecycle

    /// A new connection is up (its channels are reopened one by one with `channelOpened`).
    func connected() {
        guard link != .closed else { return }
        link = .connected
        blockedReason = nil
    }

    /// The connection is gone. Every channel closes (queued acks are dropped: the broker
    /// requeues those deliveries), and every unconfirmed publish fails: it may or may not
    /// have reached a queue. Consumers stay registered and resume after the reconnect.
    /// Nil when there was no connection to lose.
    func connectionLost(_ error: AMQPError) -> [Completion]? {
        guard link == .connected else { return nil }
        link = .disconnected
        blockedReason = nil
        let lost = AMQPError(.connectionLost, "publish not confirmed before the connection was lost (\(error.context))")
        var completions: [Completion] = []
        for channel in channels.values.sorted(by: { $0.id < $1.id }) {
            channel.open = false
            channel.content = nil
            for pending in channel.takeAllUnconfirmed() { completions.append(.publish(pending.done, .failure(lost))) }
        }
        channelsWithAcks.removeAll()
        return completions
    }

    /// The broker opened `id` (again): a new epoch, so tags and acks of the old one are void.
    func channelOpened(_ id: UInt16) {
        guard let channel = channels[id] else { return }
        epochs += 1
        channel.reopened(epoch: epochs)
    }

    /// An application channel; false when there is no connection to open it on yet (it is
    /// opened with the others on connect).
    func register(_ id: UInt16, confirms: Bool, handle: ChannelHandle) -> Bool {
        channels[id] = ChannelState(id: id, confirms: confirms, handle: handle)
        return link == .connected
    }

    /// The broker refused to open a channel being registered.
    func registrationFailed(_ id: UInt16) {
        channels[id] = nil
    }

    /// What closing a channel (by the application) leaves to do.
    struct ChannelRemoval {
        /// Acks queued on it, to send before it closes.
        var acks: AckFrames = .none
        var completions: [Completion] = []
        /// True when the broker has it open: send `channel.close`.
        var closeAtBroker = false
    }

    func removeChannel(_ id: UInt16) -> ChannelRemoval {
        guard let channel = channels.removeValue(forKey: id) else { return ChannelRemoval() }
        var removal = ChannelRemoval(acks: link == .connected ? channel.takeQueuedAcks() : .none, closeAtBroker: link == .connected && channel.open)
        channelsWithAcks.remove(id)
        let closed = AMQPError(.closed, "channel \(id) was closed before the operation completed")
        for pending in channel.takeAllUnconfirmed() { removal.completions.append(.publish(pending.done, .failure(closed))) }
        for consumer in channel.consumers.values.sorted(by: { $0.tag < $1.tag }) { removal.completions.append(.endConsumer(consumer, nil)) }
        heldPublishes.removeAll { request in
            guard request.channel == id else { return false }
            removal.completions.append(.publish(request.done, .failure(closed)))
            return true
        }
        heldCalls.removeAll { call in
            guard call.channel == id else { return false }
            removal.completions.append(.method(call.reply, .failure(closed)))
            return true
        }
        return removal
    }

    /// The broker closed a channel (e.g. 404 publishing to a missing exchange): its
    /// unconfirmed publishes can never be confirmed now and fail with the broker's
    /// reason. The driver then reopens it. Nil for a channel Warren does not have.
    func channelClosed(_ id: UInt16, _ error: AMQPError) -> [Completion]? {
        guard let channel = channels[id] else { return nil }
        channel.open = false
        channel.content = nil
        channelsWithAcks.remove(id)
        return channel.takeAllUnconfirmed().map { .publish($0.done, .failure(error)) }
    }

    /// The consumers to resume on a reopened channel, in a stable order.
    func consumers(on id: UInt16) -> [ConsumerRegistration] {
        channels[id]?.consumers.values.sorted { $0.tag < $1.tag } ?? []
    }

    /// A consumer that cannot come back (its queue is gone): its sequence ends with `error`.
    func consumerLost(_ tag: String, on id: UInt16, _ error: AMQPError) -> Completion? {
        channels[id]?.consumers.removeValue(forKey: tag).map { .endConsumer($0, error) }
    }

    /// Closed by the application: everything still waiting fails, consumers end.
    func shutdown() -> [Completion] {
        link = .closed
        blockedReason = nil
        let closed = AMQPError(.closed, "the connection was closed before the operation completed")
        var completions: [Completion] = []
        for channel in channels.values.sorted(by: { $0.id < $1.id }) {
            channel.open = false
            for pending in channel.takeAllUnconfirmed() { completions.append(.publish(pending.done, .failure(closed))) }
            for consumer in channel.consumers.values.sorted(by: { $0.tag < $1.tag }) { completions.append(.endConsumer(consumer, nil)) }
            channel.consumers.removeAll()
        }
        completions += heldPublishes.map { .publish($0.done, .failure(closed)) }
        completions += heldCalls.map { .method($0.reply, .failure(closed)) }
        heldPublishes = []
        heldCalls = []
        channelsWithAcks.removeAll()
        return completions
    }

    // MARK: Publishing and confirms

    enum PublishAction {
        /// Write it on `channel`; with `sequence`, in the `publishSequenceHeader` (a
        /// mandatory publish on a confirm channel, so a `basic.return` can be matched).
        case send(ChannelState, sequence: UInt64?)
        /// Waits for the connection, the channel or the end of a resource alarm.
        case hold
        case fail(AMQPError)
    }

    /// Decides what happens to a publish. Its deadline counts from the first time it is
    /// seen here (`now`), so holding it does not extend it.
    func publish(_ request: PublishRequest, now: ContinuousClock.Instant) -> PublishAction {
        if request.deadline == nil { request.deadline = now + request.timeout }
        guard link != .closed, let channel = channels[request.channel] else {
            return .fail(AMQPError(.closed, "publish on closed channel \(request.channel)"))
        }
        // Behind an older held publish of its channel it waits too: publishes keep their order.
        guard link == .connected, blockedReason == nil, channel.open,
            heldPublishes.isEmpty || !heldPublishes.contains(where: { $0.channel == request.channel })
        else {
            heldPublishes.append(request)
            return .hold
        }
        return .send(channel, sequence: channel.confirms && request.mandatory ? channel.nextSequence : nil)
    }

    /// The publish was written: it awaits its confirm, or is done on a channel without confirms.
    func published(_ request: PublishRequest, on channel: ChannelState) -> Completion? {
        guard channel.confirms else { return .publish(request.done, .success(())) }
        channel.sent(PendingConfirm(deadline: request.deadline!, timeout: request.timeout, done: request.done))
        return nil
    }

    private func confirm(_ id: UInt16, tag: UInt64, multiple: Bool, nacked: Bool) -> [Completion] {
        guard let channel = channels[id] else { return [] }
        return channel.settle(upTo: tag, multiple: multiple).map { pending in
            if nacked {
                return .publish(pending.done, .failure(AMQPError(.publishNacked, "the broker nacked the publish")))
            } else if let returned = pending.returned {
                return .publish(pending.done, .failure(AMQPError(
                    .publishReturned, "no queue is bound to exchange '\(returned.exchange)' for routing key '\(returned.routingKey)'",
                    replyCode: returned.replyCode, replyText: returned.replyText)))
            }
            return .publish(pending.done, .success(()))
        }
    }

    // MARK: Synchronous methods

    enum CallAction {
        /// Run the method on the channel, whose deliveries belong to `epoch`.
        case run(epoch: UInt64)
        case hold
        case fail(AMQPError)
    }

    func call(_ call: Call) -> CallAction {
        guard link != .closed, let channel = channels[call.channel] else {
            return .fail(AMQPError(.closed, "\(call.method.context): channel \(call.channel) is closed"))
        }
        guard link == .connected, channel.open else {
            heldCalls.append(call)
            return .hold
        }
        if case .get = call.method, !channel.unconfirmed.isEmpty || !channel.consumers.isEmpty {
            // rabbitmq-c reads get-ok's content as the next frames on the channel; a confirm
            // or delivery received meanwhile would be taken for it and cost the connection.
            return .fail(AMQPError(
                .library, "\(call.method.context): channel \(call.channel) has publishes awaiting confirms or a consumer; use basic.get on a channel of its own"))
        }
        return .run(epoch: channel.epoch)
    }

    /// What a failed method leaves to do.
    enum Recovery: Equatable {
        case none
        /// The broker closed the channel: reopen it.
        case reopenChannel
        /// The connection cannot be used any more.
        case reconnect
    }

    /// Records what a method changed and returns what to report (in order) and do next.
    func completed(_ call: Call, _ result: Result<MethodReply, AMQPError>) -> (completions: [Completion], recovery: Recovery) {
        let channel = channels[call.channel]
        var completions: [Completion] = []
        if case .cancel(let tag) = call.method, let consumer = channel?.consumers.removeValue(forKey: tag) {
            // Ends whatever the broker answered: a failed cancel means a closed channel,
            // whose consumers are gone at the broker anyway.
            completions.append(.endConsumer(consumer, nil))
        }
        completions.append(.method(call.reply, result))
        switch result {
        case .success(let reply):
            recovery.record(call.method)
            switch call.method {
            case .consume(let registration): channel?.consumers[registration.tag] = registration
            case .qos(let prefetch): channel?.prefetch = prefetch
            case .get:
                if case .delivery(let delivery?) = reply { channel?.unsettled.append(delivery.deliveryTag) }
            default: break
            }
            return (completions, .none)
        case .failure(let error):
            if error.code == .channelClosed, channel != nil { return (completions, .reopenChannel) }
            return (completions, error.isFatalToConnection ? .reconnect : .none)
        }
    }

    // MARK: Settling deliveries

    enum SettleAction: Equatable {
        /// Nothing to write now: queued for `takeQueuedAcks`, or stale (dropped).
        case none
        /// Write `flush` (acks queued earlier on the channel, to keep order), then the settlement.
        case send(flush: AckFrames, Settlement)
    }

    /// Single acks are queued, to go out together; a nack, reject or multiple ack goes out
    /// now, after the acks queued before it. A settlement of a delivery from another epoch
    /// is dropped: its tag means a different message on the channel now.
    func settle(_ settlement: Settlement) -> SettleAction {
        guard link == .connected, let channel = channels[settlement.channel], channel.accepts(epoch: settlement.generation) else {
            return .none
        }
        if case .ack = settlement.kind, !settlement.multiple {
            if channel.queueAck(settlement.deliveryTag, epoch: settlement.generation) { channelsWithAcks.insert(channel.id) }
            return .none
        }
        let flush = channel.takeQueuedAcks()
        if settlement.multiple {
            channel.unsettled.removeAll(upTo: settlement.deliveryTag)
        } else {
            channel.unsettled.remove(settlement.deliveryTag)
        }
        return .send(flush: flush, settlement)
    }

    /// The acks queued since the last call, per channel in channel order.
    func takeQueuedAcks() -> [(channel: UInt16, frames: AckFrames)] {
        guard !channelsWithAcks.isEmpty else { return [] }
        defer { channelsWithAcks.removeAll(keepingCapacity: true) }
        return channelsWithAcks.sorted().compactMap { id in
            guard let channel = channels[id] else { return nil }
            let frames = channel.takeQueuedAcks()
            return frames == .none ? nil : (id, frames)
        }
    }

    // MARK: Frames from the broker

    enum FrameAction {
        case none
        case complete([Completion])
        case deliver(ConsumerRegistration, AMQPDelivery)
        /// The broker cancelled a consumer (its queue was deleted): end its sequence with the error.
        case consumerCancelled(ConsumerRegistration, AMQPError)
        /// A delivery for a consumer that is gone (cancelled meanwhile): give it back.
        case requeue(channel: UInt16, tag: UInt64)
        /// A `basic.return` that matches no unconfirmed publish (worth a warning).
        case unmatchedReturn(AMQPReturnedMessage)
        /// Answer `channel.close-ok`; then, when `reopen`, open the channel again.
        case channelClosed(UInt16, AMQPError, [Completion], reopen: Bool)
        /// Answer `connection.close-ok`; the connection is gone.
        case connectionClosed(AMQPError)
        case blocked(String)
        case unblocked
        case flowOK(channel: UInt16, active: Bool)
        case ignored
    }

    func receive(_ frame: InboundFrame) -> FrameAction {
        switch frame {
        case .deliver(let id, let tag, let redelivered, let exchange, let routingKey, let consumerTag):
            channels[id]?.content = IncomingContent(kind: .delivery(
                tag: tag, redelivered: redelivered, exchange: exchange, routingKey: routingKey, consumerTag: consumerTag))
            return .none
        case .returned(let id, let returned):
            channels[id]?.content = IncomingContent(kind: .returned(returned))
            return .none
        case .header(let id, let properties, let bodySize, let report):
            guard let channel = channels[id], let content = channel.content else { return .none }
            var limit: Int?
            if case .delivery(_, _, _, _, let consumerTag) = content.kind { limit = channel.consumers[consumerTag]?.maxBodySize }
            channel.content!.header(properties, bodySize: bodySize, report: report, limit: limit)
            return completeContent(channel)
        case .body(let id, let fragment):
            guard let channel = channels[id], channel.content != nil else { return .none }
            if !fragment.isEmpty { channel.content!.append(fragment) }
            return completeContent(channel)
        case .confirm(let id, let tag, let multiple, let nacked):
            return .complete(confirm(id, tag: tag, multiple: multiple, nacked: nacked))
        case .consumerCancelled(let id, let tag):
            guard let consumer = channels[id]?.consumers.removeValue(forKey: tag) else { return .none }
            return .consumerCancelled(consumer, AMQPError(.consumerCancelled, "the broker cancelled the consumer on '\(consumer.queue)'"))
        case .channelClose(let id, let code, let text):
            let error = AMQPError(.channelClosed, "the broker closed channel \(id)", replyCode: code, replyText: text)
            let completions = channelClosed(id, error)
            return .channelClosed(id, error, completions ?? [], reopen: completions != nil && link == .connected)
        case .connectionClose(let code, let text):
            return .connectionClosed(AMQPError(.connectionClosed, "the broker closed the connection", replyCode: code, replyText: text))
        case .blocked(let reason):
            blockedReason = reason
            return .blocked(reason)
        case .unblocked:
            blockedReason = nil
            return .unblocked
        case .flow(let id, let active):
            return .flowOK(channel: id, active: active)
        case .ignored:
            return .ignored
        }
    }

    private func completeContent(_ channel: ChannelState) -> FrameAction {
        guard let content = channel.content, content.isComplete else { return .none }
        channel.content = nil
        switch content.kind {
        case .delivery(let tag, let redelivered, let exchange, let routingKey, let consumerTag):
            guard let consumer = channel.consumers[consumerTag] else { return .requeue(channel: channel.id, tag: tag) }
            channel.unsettled.append(tag)
            return .deliver(consumer, AMQPDelivery(
                body: content.body, properties: content.properties, deliveryTag: tag, redelivered: redelivered,
                exchange: exchange, routingKey: routingKey, consumerTag: consumerTag, messageCount: nil,
                channelID: channel.id, generation: channel.epoch, headersTooDeep: content.report.tooDeep,
                stringsNotUTF8: content.report.notUTF8, discardedBodySize: content.discarding ? content.bodySize : nil))
        case .returned(let returned):
            let sequence = content.properties.headers?[publishSequenceHeader]?.intValue.flatMap { UInt64(exactly: $0) }
            if sequence.map({ channel.unconfirmed.markReturned($0, returned) }) == true { return .none }
            return .unmatchedReturn(returned)
        }
    }

    // MARK: Waiting work and deadlines

    /// Work held while disconnected, blocked or a channel was closed, to try again now
    /// (methods first; publishes only while not blocked). What still cannot go is held again.
    func takeHeldWork() -> (calls: [Call], publishes: [PublishRequest]) {
        guard link == .connected else { return ([], []) }
        let calls = heldCalls
        heldCalls = []
        guard blockedReason == nil else { return (calls, []) }
        let publishes = heldPublishes
        heldPublishes = []
        return (calls, publishes)
    }

    /// Fails what waited past its deadline: unconfirmed publishes (no confirm in time),
    /// held publishes and held methods (saying what they waited for).
    func expire(now: ContinuousClock.Instant) -> [Completion] {
        var completions: [Completion] = []
        for channel in channels.values.sorted(by: { $0.id < $1.id }) {
            for pending in channel.unconfirmed.removeExpired(at: now) {
                completions.append(.publish(pending.done, .failure(AMQPError(.timeout, "no publisher confirm within \(pending.timeout)"))))
            }
        }
        let why = blockedReason.map { "the broker blocked publishing (\($0))" } ?? (link != .connected ? "not connected to the broker" : "the channel is not open")
        heldPublishes.removeAll { request in
            guard request.deadline! <= now else { return false }
            completions.append(.publish(request.done, .failure(AMQPError(.timeout, "publish waited \(request.timeout): \(why)"))))
            return true
        }
        heldCalls.removeAll { call in
            guard call.deadline <= now else { return false }
            completions.append(.method(call.reply, .failure(AMQPError(.timeout, "\(call.method.context): \(why)"))))
            return true
        }
        return completions
    }
}

/// A mandatory publish's properties with its sequence number in a header.
extension AMQPProperties {
    func tagged(sequence: UInt64) -> AMQPProperties {
        var properties = self
        var headers = properties.headers ?? [:]
        headers[publishSequenceHeader] = .int64(Int64(sequence))
        properties.headers = headers
        return properties
    }
}
