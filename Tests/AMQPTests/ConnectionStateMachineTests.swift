@testable import AMQP
import Locking
import Testing

/// The connection's decisions without a broker or a socket: the tests play the driver,
/// feeding commands, decoded frames and clock readings to `ConnectionStateMachine` and
/// checking what it answers. Each test names the guard it would catch missing.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    private static let channel: UInt16 = 2

    /// What the callers were told, by publish number.
    private final class Outcomes: Sendable {
        private let results = Mutex<[Int: Result<Void, AMQPError>]>([:])
        func record(_ index: Int, _ result: Result<Void, AMQPError>) { results.withLock { $0[index] = result } }
        subscript(_ index: Int) -> Result<Void, AMQPError>? { results.withLock { $0[index] } }
        var count: Int { results.withLock { $0.count } }
        func succeeded(_ index: Int) -> Bool { if case .success = self[index] { true } else { false } }
        func error(_ index: Int) -> AMQPError? { if case .failure(let error) = self[index] { error } else { nil } }
    }

    /// A connected machine with confirm channel 2 open.
    private func connectedMachine(confirms: Bool = true) -> Machine {
        let machine = Machine()
        machine.connected()
        machine.channelOpened(Machine.controlChannel)
        #expect(machine.register(Self.channel, confirms: confirms, handle: ChannelHandle()))
        machine.channelOpened(Self.channel)
        return machine
    }

    private func request(
        _ index: Int, _ outcomes: Outcomes, mandatory: Bool = false, timeout: Duration = .seconds(5)
    ) -> PublishRequest {
        PublishRequest(
            channel: Self.channel, exchange: "events", routingKey: "user.created", mandatory: mandatory, properties: AMQPProperties(),
            body: [1], timeout: timeout, done: { outcomes.record(index, $0) })
    }

    /// Publishes as the driver does: decide, "write", record. Returns whether it was sent.
    @discardableResult
    private func publish(_ machine: Machine, _ request: PublishRequest, now: ContinuousClock.Instant = .now) -> Bool {
        switch machine.publish(request, now: now) {
        case .send(let channel, _):
            machine.published(request, on: channel)?.run()
            return true
        case .hold:
            return false
        case .fail(let error):
            request.done(.failure(error))
            return false
        }
    }

    private func run(_ action: Machine.FrameAction) {
        if case .complete(let completions) = action { completions.forEach { $0.run() } }
    }

    /// Starts a consumer on channel 2 the way `AMQPChannel.consume` does, through a method.
    private func startConsumer(_ machine: Machine, tag: String = "c1", maxBodySize: Int? = nil) -> AsyncThrowingStream<AMQPDelivery, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: AMQPDelivery.self, throwing: (any Error).self)
        let call = Call(
            channel: Self.channel,
            method: .consume(ConsumerRegistration(
                channel: Self.channel, queue: "q", tag: tag, exclusive: false, arguments: [:], maxBodySize: maxBodySize, deliveries: continuation)),
            deadline: .now + .seconds(5), reply: { _ in })
        guard case .run = machine.call(call) else {
            Issue.record("consume was not run")
            return stream
        }
        _ = machine.completed(call, .success(.done))
        return stream
    }

    /// Feeds deliver + header (empty body) and returns the delivery handed to the consumer.
    private func deliver(_ machine: Machine, tag: UInt64, consumer: String = "c1") -> AMQPDelivery? {
        _ = machine.receive(.deliver(channel: Self.channel, tag: tag, redelivered: false, exchange: "events", routingKey: "k", consumerTag: consumer))
        guard case .deliver(_, let delivery) = machine.receive(.header(channel: Self.channel, AMQPProperties(), bodySize: 0)) else {
            return nil
        }
        return delivery
    }

    private func ack(_ delivery: AMQPDelivery, multiple: Bool = false) -> Settlement {
        Settlement(channel: delivery.channelID, generation: delivery.generation, deliveryTag: delivery.deliveryTag, multiple: multiple, kind: .ack)
    }

    // MARK: Confirms

    @Test func aMultipleConfirmSettlesEveryPublishUpToItsTag() {
        let machine = connectedMachine(), outcomes = Outcomes()
        for index in 1...5 { #expect(publish(machine, request(index, outcomes))) }
        run(machine.receive(.confirm(channel: Self.channel, tag: 3, multiple: true, nacked: false)))
        #expect((1...3).allSatisfy(outcomes.succeeded))
        #expect(outcomes.count == 3, "4 and 5 still wait")
    }

    @Test func singleConfirmsOutOfOrderSettleExactlyTheirPublish() {
        let machine = connectedMachine(), outcomes = Outcomes()
        for index in 1...3 { publish(machine, request(index, outcomes)) }
        run(machine.receive(.confirm(channel: Self.channel, tag: 3, multiple: false, nacked: false)))
        #expect(outcomes.succeeded(3) && outcomes[1] == nil && outcomes[2] == nil)
        run(machine.receive(.confirm(channel: Self.channel, tag: 1, multiple: false, nacked: false)))
        #expect(outcomes.succeeded(1) && outcomes[2] == nil)
    }

    @Test func aNackFailsThePublishesItCovers() {
        let machine = connectedMachine(), outcomes = Outcomes()
        for index in 1...3 { publish(machine, request(index, outcomes)) }
        run(machine.receive(.confirm(channel: Self.channel, tag: 2, multiple: true, nacked: true)))
        #expect(outcomes.error(1)?.code == .publishNacked && outcomes.error(2)?.code == .publishNacked)
        run(machine.receive(.confirm(channel: Self.channel, tag: 3, multiple: false, nacked: false)))
        #expect(outcomes.succeeded(3))
    }

    /// A mandatory publish is numbered in a header; the `basic.return` carrying it turns
    /// the following ack into `publishReturned` for that publish only.
    @Test func aReturnedMandatoryPublishFailsWhenItsConfirmArrives() {
        let machine = connectedMachine(), outcomes = Outcomes()
        publish(machine, request(1, outcomes, mandatory: true))
        let second = request(2, outcomes, mandatory: true)
        guard case .send(let channel, let sequence) = machine.publish(second, now: .now) else {
            Issue.record("not sent")
            return
        }
        #expect(sequence == 2)
        machine.published(second, on: channel)?.run()
        _ = machine.receive(.returned(channel: Self.channel, AMQPReturnedMessage(replyCode: 312, replyText: "NO_ROUTE", exchange: "events", routingKey: "nowhere")))
        let tagged = AMQPProperties().tagged(sequence: 2)
        if case .unmatchedReturn = machine.receive(.header(channel: Self.channel, tagged, bodySize: 0)) {
            Issue.record("the return should match publish 2")
        }
        run(machine.receive(.confirm(channel: Self.channel, tag: 2, multiple: true, nacked: false)))
        #expect(outcomes.succeeded(1))
        #expect(outcomes.error(2)?.code == .publishReturned && outcomes.error(2)?.replyCode == 312)
    }

    @Test func aPublishOnAChannelWithoutConfirmsIsDoneOnceWritten() {
        let machine = connectedMachine(confirms: false), outcomes = Outcomes()
        publish(machine, request(1, outcomes))
        #expect(outcomes.succeeded(1))
    }

    // MARK: Blocked, held work and deadlines

    /// Guard: `blockedReason == nil` in `publish` and in `takeHeldWork`.
    @Test func whileBlockedPublishesWaitAndGoOutWhenUnblocked() {
        let machine = connectedMachine(), outcomes = Outcomes()
        guard case .blocked("low on memory") = machine.receive(.blocked(reason: "low on memory")) else {
            Issue.record("blocked not reported")
            return
        }
        #expect(!publish(machine, request(1, outcomes)), "held while blocked")
        #expect(machine.takeHeldWork().publishes.isEmpty, "still blocked: nothing to retry")
        _ = machine.receive(.unblocked)
        let held = machine.takeHeldWork().publishes
        #expect(held.count == 1)
        #expect(held.allSatisfy { publish(machine, $0) })
        run(machine.receive(.confirm(channel: Self.channel, tag: 1, multiple: false, nacked: false)))
        #expect(outcomes.succeeded(1))
    }

    /// Guard: the held-publish check in `publish`. The alarm clears between two batches of
    /// commands: a publish of the new batch must not overtake the ones held before it.
    @Test func aPublishAfterTheAlarmClearsWaitsBehindTheHeldOnes() {
        let machine = connectedMachine(), outcomes = Outcomes()
        _ = machine.receive(.blocked(reason: "disk"))
        #expect(!publish(machine, request(1, outcomes)))
        _ = machine.receive(.unblocked)
        #expect(!publish(machine, request(2, outcomes)), "held behind publish 1")
        var sent: [Int] = []
        for held in machine.takeHeldWork().publishes where publish(machine, held) { sent.append(sent.count + 1) }
        #expect(sent == [1, 2])
        run(machine.receive(.confirm(channel: Self.channel, tag: 1, multiple: false, nacked: false)))
        #expect(outcomes.succeeded(1) && outcomes[2] == nil, "sequence 1 is publish 1: the order held")
    }

    /// Methods are not publishes: a resource alarm does not hold a `queue.declare`.
    @Test func whileBlockedMethodsStillRun() {
        let machine = connectedMachine()
        _ = machine.receive(.blocked(reason: "disk"))
        let call = Call(channel: Self.channel, method: .queueInfo(name: "q"), deadline: .now + .seconds(1), reply: { _ in })
        guard case .run = machine.call(call) else {
            Issue.record("a method was held while blocked")
            return
        }
    }

    /// Guard: held publishes expire at the deadline set when first seen, and say why they waited.
    @Test func aPublishHeldPastItsDeadlineFailsSayingWhatItWaitedFor() {
        let machine = connectedMachine(), outcomes = Outcomes()
        _ = machine.receive(.blocked(reason: "low on memory"))
        let start = ContinuousClock.now
        publish(machine, request(1, outcomes, timeout: .seconds(2)), now: start)
        #expect(machine.expire(now: start + .seconds(1)).isEmpty)
        let expired = machine.expire(now: start + .seconds(2))
        expired.forEach { $0.run() }
        #expect(outcomes.error(1)?.code == .timeout)
        #expect(outcomes.error(1)?.context.contains("blocked publishing (low on memory)") == true)
        #expect(machine.takeHeldWork().publishes.isEmpty, "gone once failed")
    }

    /// Guard: `removeExpired` in `expire`.
    @Test func aPublishWithoutAConfirmInTimeFails() {
        let machine = connectedMachine(), outcomes = Outcomes()
        let start = ContinuousClock.now
        publish(machine, request(1, outcomes, timeout: .seconds(1)), now: start)
        publish(machine, request(2, outcomes, timeout: .seconds(10)), now: start)
        machine.expire(now: start + .seconds(1)).forEach { $0.run() }
        #expect(outcomes.error(1)?.code == .timeout && outcomes[2] == nil)
        run(machine.receive(.confirm(channel: Self.channel, tag: 2, multiple: true, nacked: false)))
        #expect(outcomes.succeeded(2), "the late multiple ack settles only what is left")
    }

    @Test func whileDisconnectedPublishesAndMethodsWaitForTheConnection() {
        let machine = Machine(), outcomes = Outcomes()
        #expect(!machine.register(Self.channel, confirms: true, handle: ChannelHandle()), "no connection to open it on yet")
        #expect(!publish(machine, request(1, outcomes)))
        let replies = Mutex<[Result<MethodReply, AMQPError>]>([])
        let call = Call(channel: Self.channel, method: .purgeQueue(name: "q"), deadline: .now + .seconds(1), reply: { r in replies.withLock { $0.append(r) } })
        guard case .hold = machine.call(call) else {
            Issue.record("a method ran without a connection")
            return
        }
        #expect(machine.takeHeldWork().publishes.isEmpty, "nothing is retried before the connection is up")
        machine.connected()
        machine.channelOpened(Self.channel)
        let (calls, publishes) = machine.takeHeldWork()
        #expect(calls.count == 1 && publishes.count == 1)
        #expect(publishes.allSatisfy { publish(machine, $0) })
    }

    /// Guard: the `.get` check in `call`. A confirm arriving between get-ok and its content
    /// used to be read as the content ("unexpected protocol state") and end the connection.
    @Test func basicGetIsRefusedOnAChannelWithPublishesAwaitingConfirms() {
        let machine = connectedMachine(), outcomes = Outcomes()
        let get = Call(channel: Self.channel, method: .get(queue: "q"), deadline: .now + .seconds(1), reply: { _ in })
        guard case .run = machine.call(get) else {
            Issue.record("a get on an idle channel must run")
            return
        }
        publish(machine, request(1, outcomes))
        guard case .fail(let error) = machine.call(get) else {
            Issue.record("a get with a publish awaiting its confirm ran")
            return
        }
        #expect(error.context.contains("channel of its own"), "\(error)")
        run(machine.receive(.confirm(channel: Self.channel, tag: 1, multiple: false, nacked: false)))
        guard case .run = machine.call(get) else {
            Issue.record("once confirmed, a get runs again")
            return
        }
    }

    /// The consumer half of the guard: a delivery arriving between get-ok and its content
    /// would be taken for it the same way.
    @Test func basicGetIsRefusedOnAChannelWithAConsumer() {
        let machine = connectedMachine()
        let get = Call(channel: Self.channel, method: .get(queue: "q"), deadline: .now + .seconds(1), reply: { _ in })
        _ = startConsumer(machine)
        guard case .fail(let error) = machine.call(get) else {
            Issue.record("a get beside a consumer ran")
            return
        }
        #expect(error.context.contains("channel of its own"), "\(error)")
        let cancel = Call(channel: Self.channel, method: .cancel(consumerTag: "c1"), deadline: .now + .seconds(1), reply: { _ in })
        guard case .run = machine.call(cancel) else {
            Issue.record("cancel was not run")
            return
        }
        _ = machine.completed(cancel, .success(.done))
        guard case .run = machine.call(get) else {
            Issue.record("once the consumer is cancelled, a get runs again")
            return
        }
    }

    @Test func aMethodHeldPastItsDeadlineFailsWithTimeout() {
        let machine = Machine()
        _ = machine.register(Self.channel, confirms: true, handle: ChannelHandle())
        let replies = Mutex<[Result<MethodReply, AMQPError>]>([])
        let start = ContinuousClock.now
        _ = machine.call(Call(channel: Self.channel, method: .purgeQueue(name: "q"), deadline: start + .seconds(1), reply: { r in replies.withLock { $0.append(r) } }))
        machine.expire(now: start + .seconds(1)).forEach { $0.run() }
        let error = replies.withLock { $0.first.flatMap { if case .failure(let e) = $0 { e } else { nil } } }
        #expect(error?.code == .timeout)
        #expect(error?.context == "queue.purge q: not connected to the broker")
    }

    // MARK: Settling deliveries

    @Test func inOrderAcksOfAConsumerGoOutAsOneMultipleAck() {
        let machine = connectedMachine()
        _ = startConsumer(machine)
        let deliveries = (1...4).compactMap { deliver(machine, tag: $0) }
        #expect(deliveries.count == 4)
        for delivery in deliveries.prefix(3) { #expect(machine.settle(ack(delivery)) == .none, "queued, not written") }
        let acks = machine.takeQueuedAcks()
        #expect(acks.count == 1 && acks.first?.channel == Self.channel && acks.first?.frames == .multiple(upTo: 3))
        #expect(machine.takeQueuedAcks().isEmpty, "sent once")
    }

    /// A nack goes out at once, after the acks queued before it (order is kept).
    @Test func aNackFlushesTheAcksQueuedBeforeIt() {
        let machine = connectedMachine()
        _ = startConsumer(machine)
        let deliveries = (1...3).compactMap { deliver(machine, tag: $0) }
        _ = machine.settle(ack(deliveries[0]))
        let nack = Settlement(channel: Self.channel, generation: deliveries[1].generation, deliveryTag: 2, multiple: false, kind: .nack(requeue: false))
        #expect(machine.settle(nack) == .send(flush: .single([1]), nack))
        #expect(machine.takeQueuedAcks().isEmpty)
    }

    /// Guard: the epoch check in `settle`. After a reconnect tags restart at 1: an ack of
    /// the old delivery 1 would settle the new delivery 1, a different message.
    @Test func aDeliveryFromBeforeAReconnectIsStaleAndNeverSettlesTheNewOne() {
        let machine = connectedMachine(), outcomes = Outcomes()
        _ = startConsumer(machine)
        let old = deliver(machine, tag: 1)!
        publish(machine, request(1, outcomes))
        let failed = machine.connectionLost(AMQPError(.connectionLost, "socket closed"))
        failed?.forEach { $0.run() }
        #expect(outcomes.error(1)?.code == .connectionLost, "an unconfirmed publish fails: it may or may not have landed")
        #expect(machine.connectionLost(AMQPError(.connectionLost, "again")) == nil, "lost once")
        machine.connected()
        machine.channelOpened(Self.channel)
        let new = deliver(machine, tag: 1)!
        #expect(new.generation != old.generation)
        #expect(machine.settle(ack(old)) == .none)
        #expect(machine.takeQueuedAcks().isEmpty, "the stale ack was dropped")
        let staleReject = Settlement(channel: Self.channel, generation: old.generation, deliveryTag: 1, multiple: false, kind: .reject(requeue: false))
        #expect(machine.settle(staleReject) == .none, "a stale reject would dead-letter the new delivery 1")
        #expect(machine.settle(ack(new)) == .none)
        #expect(machine.takeQueuedAcks().first?.frames == .single([1]))
    }

    /// Guard: a closing channel drops its queued acks. The broker closes channel 2 with
    /// acks queued, the driver reopens it at once, and the new channel delivers tag 1
    /// again: the queued ack must not settle it.
    @Test func acksQueuedWhenTheBrokerClosesTheChannelNeverReachTheReopenedOne() {
        let machine = connectedMachine(), outcomes = Outcomes()
        _ = startConsumer(machine)
        let first = deliver(machine, tag: 1)!
        publish(machine, request(1, outcomes))
        _ = machine.settle(ack(first))
        guard case .channelClosed(let id, let error, let completions, let reopen) = machine.receive(
            .channelClose(channel: Self.channel, replyCode: 406, replyText: "PRECONDITION_FAILED - unknown delivery tag"))
        else {
            Issue.record("channel close not reported")
            return
        }
        completions.forEach { $0.run() }
        #expect(id == Self.channel && reopen && error.replyCode == 406)
        #expect(outcomes.error(1)?.replyCode == 406, "its unconfirmed publish fails with the broker's reason")
        machine.channelOpened(Self.channel)
        #expect(machine.consumers(on: Self.channel).map(\.tag) == ["c1"], "the consumer resumes on the new channel")
        _ = deliver(machine, tag: 1)
        #expect(machine.takeQueuedAcks().isEmpty)
        #expect(machine.channels[Self.channel]!.unsettled.count == 1)
    }

    @Test func aDeliveryForACancelledConsumerIsRequeued() {
        let machine = connectedMachine()
        _ = startConsumer(machine)
        let cancel = Call(channel: Self.channel, method: .cancel(consumerTag: "c1"), deadline: .now + .seconds(1), reply: { _ in })
        let (completions, _) = machine.completed(cancel, .success(.done))
        #expect(completions.contains { if case .endConsumer(let c, nil) = $0 { c.tag == "c1" } else { false } })
        _ = machine.receive(.deliver(channel: Self.channel, tag: 7, redelivered: false, exchange: "", routingKey: "q", consumerTag: "c1"))
        guard case .requeue(Self.channel, 7) = machine.receive(.header(channel: Self.channel, AMQPProperties(), bodySize: 0)) else {
            Issue.record("not requeued")
            return
        }
    }

    /// The broker cancels a consumer (its queue was deleted): its sequence ends with the
    /// error, and a delivery still on the way for it goes back to the queue.
    @Test func aConsumerTheBrokerCancelsEndsWithTheErrorAndLateDeliveriesAreRequeued() {
        let machine = connectedMachine()
        _ = startConsumer(machine)
        guard case .consumerCancelled(let consumer, let error) = machine.receive(.consumerCancelled(channel: Self.channel, consumerTag: "c1")) else {
            Issue.record("the cancel was not reported")
            return
        }
        #expect(consumer.tag == "c1" && error.code == .consumerCancelled)
        #expect(machine.consumers(on: Self.channel).isEmpty, "not resumed after a reopen")
        _ = machine.receive(.deliver(channel: Self.channel, tag: 3, redelivered: false, exchange: "", routingKey: "q", consumerTag: "c1"))
        guard case .requeue(Self.channel, 3) = machine.receive(.header(channel: Self.channel, AMQPProperties(), bodySize: 0)) else {
            Issue.record("not requeued")
            return
        }
    }

    @Test func aBodyIsAssembledFromItsFragments() {
        let machine = connectedMachine()
        _ = startConsumer(machine)
        _ = machine.receive(.deliver(channel: Self.channel, tag: 1, redelivered: true, exchange: "events", routingKey: "k", consumerTag: "c1"))
        _ = machine.receive(.header(channel: Self.channel, AMQPProperties(type: "t"), bodySize: 5))
        let part1: [UInt8] = [1, 2, 3], part2: [UInt8] = [4, 5]
        let first = part1.withUnsafeBytes { machine.receive(.body(channel: Self.channel, $0)) }
        if case .deliver = first { Issue.record("delivered before the body was complete") }
        guard case .deliver(_, let delivery) = part2.withUnsafeBytes({ machine.receive(.body(channel: Self.channel, $0)) }) else {
            Issue.record("not delivered")
            return
        }
        #expect(delivery.body == [1, 2, 3, 4, 5] && delivery.redelivered && delivery.properties.type == "t")
        #expect(delivery.discardedBodySize == nil)
    }

    /// A body over the consumer's limit is read and dropped frame by frame (never held,
    /// whatever size the sender announced); one at the limit is kept.
    @Test func aBodyOverTheConsumersLimitIsDroppedAsItArrives() {
        let machine = connectedMachine()
        _ = startConsumer(machine, maxBodySize: 4)
        _ = machine.receive(.deliver(channel: Self.channel, tag: 1, redelivered: false, exchange: "events", routingKey: "k", consumerTag: "c1"))
        _ = machine.receive(.header(channel: Self.channel, AMQPProperties(messageID: "big"), bodySize: 5))
        let part1: [UInt8] = [1, 2, 3], part2: [UInt8] = [4, 5]
        if case .deliver = part1.withUnsafeBytes({ machine.receive(.body(channel: Self.channel, $0)) }) { Issue.record("delivered early") }
        guard case .deliver(_, let big) = part2.withUnsafeBytes({ machine.receive(.body(channel: Self.channel, $0)) }) else {
            Issue.record("not delivered")
            return
        }
        #expect(big.body.isEmpty && big.discardedBodySize == 5 && big.properties.messageID == "big")
        #expect(big.body.capacity < 5, "nothing was reserved for it")

        _ = machine.receive(.deliver(channel: Self.channel, tag: 2, redelivered: false, exchange: "events", routingKey: "k", consumerTag: "c1"))
        _ = machine.receive(.header(channel: Self.channel, AMQPProperties(), bodySize: 4))
        let fits: [UInt8] = [9, 8, 7, 6]
        guard case .deliver(_, let small) = fits.withUnsafeBytes({ machine.receive(.body(channel: Self.channel, $0)) }) else {
            Issue.record("not delivered")
            return
        }
        #expect(small.body == fits && small.discardedBodySize == nil)
    }

    // MARK: Methods and recovery

    @Test func aMethodThatClosedItsChannelReopensItAndAFatalOneReconnects() {
        let machine = connectedMachine()
        let call = Call(channel: Self.channel, method: .queueInfo(name: "missing"), deadline: .now + .seconds(1), reply: { _ in })
        #expect(machine.completed(call, .failure(AMQPError(.channelClosed, "404", replyCode: 404))).recovery == .reopenChannel)
        #expect(machine.completed(call, .failure(AMQPError(.connectionLost, "reset"))).recovery == .reconnect)
        #expect(machine.completed(call, .failure(AMQPError(.invalidMessage, "bad"))).recovery == .none)
    }

    @Test func prefetchIsKeptForTheReopen() {
        let machine = connectedMachine()
        let call = Call(channel: Self.channel, method: .qos(prefetch: 50), deadline: .now + .seconds(1), reply: { _ in })
        _ = machine.completed(call, .success(.done))
        #expect(machine.channels[Self.channel]?.prefetch == 50)
        _ = machine.completed(Call(channel: Self.channel, method: .qos(prefetch: 10), deadline: .now, reply: { _ in }), .failure(AMQPError(.timeout, "t")))
        #expect(machine.channels[Self.channel]?.prefetch == 50, "a refused qos changes nothing")
    }

    @Test func shutdownFailsEverythingWaitingAndEndsConsumers() async throws {
        let machine = connectedMachine(), outcomes = Outcomes()
        let deliveries = startConsumer(machine)
        publish(machine, request(1, outcomes))
        _ = machine.receive(.blocked(reason: "disk"))
        publish(machine, request(2, outcomes))
        machine.shutdown().forEach { $0.run() }
        #expect(outcomes.error(1)?.code == .closed && outcomes.error(2)?.code == .closed)
        var iterator = deliveries.makeAsyncIterator()
        #expect(try await iterator.next() == nil, "the consumer's sequence ended")
        guard case .fail(let error) = machine.publish(request(3, outcomes), now: .now) else {
            Issue.record("a closed connection accepted a publish")
            return
        }
        #expect(error.code == .closed)
    }

    @Test func closingAChannelSendsItsQueuedAcksFirstAndFailsWhatWaitsOnIt() {
        let machine = connectedMachine(), outcomes = Outcomes()
        _ = startConsumer(machine)
        _ = machine.settle(ack(deliver(machine, tag: 1)!))
        publish(machine, request(1, outcomes))
        let removal = machine.removeChannel(Self.channel)
        #expect(removal.acks == .single([1]) && removal.closeAtBroker)
        removal.completions.forEach { $0.run() }
        #expect(outcomes.error(1)?.code == .closed)
        #expect(machine.takeQueuedAcks().isEmpty)
    }
}

/// What is re-declared after a reconnect.
@Suite struct RecoveryLogTests {
    private func names(_ log: RecoveryLog) -> [String] { log.methods.map(\.context) }

    @Test func declarationsReplayInOrderAndDeletionsForgetWhatDependsOnThem() {
        var log = RecoveryLog()
        log.record(.declareExchange(name: "events", type: "topic", durable: true, autoDelete: false, internal: false, arguments: [:]))
        log.record(.declareQueue(name: "users", durable: true, exclusive: false, autoDelete: false, arguments: [:]))
        log.record(.bindQueue(queue: "users", exchange: "events", routingKey: "user.*", arguments: [:]))
        log.record(.declareQueue(name: "", durable: false, exclusive: true, autoDelete: true, arguments: [:]))
        log.record(.purgeQueue(name: "users"))
        #expect(names(log) == ["exchange.declare events", "queue.declare users", "queue.bind users"], "server-named queues and purges are not replayed")
        log.record(.deleteExchange(name: "events", ifUnused: false))
        #expect(names(log) == ["queue.declare users"], "the binding to the deleted exchange goes with it")
        log.record(.bindQueue(queue: "users", exchange: "other", routingKey: "#", arguments: [:]))
        log.record(.deleteQueue(name: "users", ifUnused: false, ifEmpty: false))
        #expect(log.methods.isEmpty)
    }

    /// A re-declaration keeps its place, so a queue is never re-declared after its bindings.
    @Test func aRedeclarationKeepsItsPlaceWithTheLatestArguments() {
        var log = RecoveryLog()
        log.record(.declareQueue(name: "q", durable: true, exclusive: false, autoDelete: false, arguments: [:]))
        log.record(.bindQueue(queue: "q", exchange: "events", routingKey: "a", arguments: [:]))
        log.record(.declareQueue(name: "q", durable: true, exclusive: false, autoDelete: false, arguments: ["x-queue-type": "quorum"]))
        #expect(names(log) == ["queue.declare q", "queue.bind q"])
        guard case .declareQueue(_, _, _, _, let arguments) = log.methods[0] else { return }
        #expect(arguments["x-queue-type"] == "quorum")
    }

    @Test func unbindingForgetsExactlyThatBinding() {
        var log = RecoveryLog()
        log.record(.bindQueue(queue: "q", exchange: "e", routingKey: "a", arguments: [:]))
        log.record(.bindQueue(queue: "q", exchange: "e", routingKey: "b", arguments: [:]))
        log.record(.unbindQueue(queue: "q", exchange: "e", routingKey: "a", arguments: [:]))
        guard case .bindQueue(_, _, let key, _) = log.methods.first, log.methods.count == 1 else {
            Issue.record("expected one binding left")
            return
        }
        #expect(key == "b")
    }
}
