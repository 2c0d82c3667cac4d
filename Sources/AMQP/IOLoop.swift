import CRabbitMQ
import Foundation
import Glibc
import Logging
import Synchronization

/// Mandatory publishes carry their channel sequence number in this header, so that a
/// `basic.return` (which has no delivery tag) can be matched to the publish that caused it.
public let publishSequenceHeader = "x-warren-publish-seq"

/// Owns one broker connection and the only thread that ever touches it.
///
/// rabbitmq-c 0.11 does nothing in the background: heartbeats are only sent and checked,
/// and confirms, returns, deliveries and `connection.blocked` only read, while someone
/// calls into it. So a dedicated thread loops: run queued commands, read every frame
/// available without waiting, expire deadlines, then sleep in `poll` on the socket and an
/// eventfd (which `submit` writes to) for at most 100 ms. Callers never block: they queue
/// a command and await its completion.
///
/// `@unchecked Sendable`: `mailbox` and `status` are behind mutexes, `wakeFD`,
/// `configuration` and `logger` never change, and every other property is read and
/// written only on the I/O thread (started once in `start`, never shared).
final class IOLoop: @unchecked Sendable {
    static let controlChannel: UInt16 = 1
    private static let pollInterval = Duration.milliseconds(100)

    let configuration: AMQPConfiguration
    let logger: Logger
    let status = ConnectionStatus()
    /// How many `basic.ack`/`basic.nack` frames with `multiple` set were received: lets
    /// tests show that multi-message confirms were really exercised.
    let multipleConfirms = Atomic<Int>(0)
    private let hasStarted = Atomic<Bool>(false)

    private struct Mailbox {
        var commands: [Command] = []
        var sleeping = false
        var closed = false
    }

    private let mailbox = Mutex(Mailbox())
    private let wakeFD: Int32

    // MARK: I/O thread only

    private var session: RabbitSession?
    private var channels: [UInt16: ChannelState] = [:]
    private var recovery: [(key: String, replay: @Sendable (RabbitSession, UInt16) throws(AMQPError) -> Void)] = []
    /// Channels with single acks queued by callers, sent together after each batch of commands.
    private var channelsWithAcks: Set<UInt16> = []
    private var heldPublishes: [PublishRequest] = []
    private var heldCalls: [Call] = []
    private var blocked: String?
    private var stopped = false
    private var epochs: UInt64 = 0
    private var endpointIndex = 0
    private var reconnectAttempt = 0
    private var nextReconnect = ContinuousClock.now
    private var nextSweep = ContinuousClock.now
    /// When the current batch of commands was taken from the mailbox (publish deadlines
    /// count from here: one clock read per batch, not per publish).
    private var commandsTakenAt = ContinuousClock.now

    init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(wakeFD >= 0, "eventfd failed: errno \(errno)")
        channels[Self.controlChannel] = ChannelState(id: Self.controlChannel, confirms: false)
    }

    deinit {
        Glibc.close(wakeFD)
    }

    /// Starts the thread and returns once the first connection is up, or throws the error
    /// of the last endpoint tried. Reconnecting only starts after a first success.
    func start() async throws(AMQPError) {
        guard !hasStarted.exchange(true, ordering: .relaxed) else {
            throw AMQPError(.library, "the connection was already started")
        }
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                threadMain { continuation.resume(returning: $0) }
            }
            thread.name = "warren-amqp"
            thread.start()
        }
        try result.get()
    }

    /// Queues a command for the I/O thread and wakes it if it is asleep in `poll`.
    func submit(_ command: Command) {
        let (accepted, wake) = mailbox.withLock { box -> (Bool, Bool) in
            guard !box.closed else { return (false, false) }
            box.commands.append(command)
            defer { box.sleeping = false }
            return (true, box.sleeping)
        }
        if !accepted { command.fail(AMQPError(.closed, "the connection is closed")) }
        if wake {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    /// For `Call.run` closures, which execute on the I/O thread.
    func channel(_ id: UInt16) -> ChannelState? { channels[id] }

    // MARK: The loop

    private func threadMain(started: (Result<Void, AMQPError>) -> Void) {
        // Commands queued before the first connection (a service that opened a channel
        // while the connection's own service was starting) fail with its error.
        var leftoverError = AMQPError(.closed, "the connection is closed")
        do {
            try connect()
            started(.success(()))
            while !stopped { iterate() }
        } catch {
            started(.failure(error))
            stopped = true
            leftoverError = error
        }
        let leftovers = mailbox.withLock { box -> [Command] in
            box.closed = true
            defer { box.commands = [] }
            return box.commands
        }
        for command in leftovers { command.fail(leftoverError) }
        status.set(.closed)
    }

    private func iterate() {
        let commands = mailbox.withLock { box -> [Command] in
            defer { box.commands.removeAll(keepingCapacity: true) }
            return box.commands
        }
        if !commands.isEmpty { commandsTakenAt = .now }
        // Several publishes and acks to send: hold them in the kernel until all are
        // written, so that a burst of publishes (three frames each) leaves as a few full
        // TCP segments instead of one small segment per publish. Never while a synchronous
        // method runs: its request would sit in the cork (up to 200 ms) while rabbitmq-c
        // waits for the reply.
        var corked: RabbitSession?
        for (index, command) in commands.enumerated() {
            if command.isOneWay {
                if corked == nil, commands.count > 1, let session {
                    Self.setCork(session.fileDescriptor, true)
                    corked = session
                }
            } else if let held = corked {
                uncork(held)
                corked = nil
            }
            execute(command)
            if stopped {
                // Closed by a command of this batch: the ones after it are answered too
                // (threadMain only fails what is still in the mailbox).
                for rest in commands[(index + 1)...] { rest.fail(AMQPError(.closed, "the connection is closed")) }
                return
            }
        }
        flushAcks()
        if let corked { uncork(corked) }
        guard let session else {
            sweepIfDue()
            if ContinuousClock.now >= nextReconnect {
                reconnect()
            } else if commands.isEmpty {
                waitForWork(socket: nil, until: min(nextReconnect, .now + Self.pollInterval))
            }
            return
        }
        flushHeld()
        var frames = 0
        do {
            // Bounded, so a flood of deliveries cannot starve queued acks and publishes.
            while frames < 256, self.session === session, let frame = try session.nextFrame() {
                try handle(frame, session)
                frames += 1
            }
        } catch {
            connectionLost(error)
            return
        }
        sweepIfDue()
        if commands.isEmpty, frames == 0, self.session === session, !session.hasBufferedInput {
            waitForWork(socket: session.fileDescriptor, until: .now + Self.pollInterval)
        }
    }

    /// Sends what the cork holds, unless the connection was lost meanwhile (its
    /// descriptor may belong to another socket by now).
    private func uncork(_ corked: RabbitSession) {
        if corked === session { Self.setCork(corked.fileDescriptor, false) }
    }

    /// TCP_CORK on or off; off sends what is held at once. (Also right for TLS: the
    /// records are written to the same socket.)
    private static func setCork(_ socket: Int32, _ on: Bool) {
        var value: Int32 = on ? 1 : 0
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sleeps until the socket is readable, a command is submitted, or `deadline`.
    private func waitForWork(socket: Int32?, until deadline: ContinuousClock.Instant) {
        let sleep = mailbox.withLock { box -> Bool in
            if box.commands.isEmpty { box.sleeping = true }
            return box.sleeping
        }
        guard sleep else { return }
        let remaining = deadline - .now
        let milliseconds = max(0, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        if let socket { fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), milliseconds)
        mailbox.withLock { $0.sleeping = false }
        if fds[0].revents & Int16(POLLIN) != 0 {
            var counter: UInt64 = 0
            _ = read(wakeFD, &counter, 8)
        }
    }

    private func execute(_ command: Command) {
        switch command {
        case .publish(let request):
            publish(request)
        case .call(let call):
            perform(call)
        case .settle(let settlement):
            settle(settlement)
        case .registerChannel(let id, let confirms, let handle, let done):
            let state = ChannelState(id: id, confirms: confirms, handle: handle)
            channels[id] = state
            guard let session else { return done(nil) }
            do {
                try session.openChannel(id, confirms: confirms, prefetch: nil)
                epochs += 1
                state.reopened(epoch: epochs)
                done(nil)
            } catch {
                channels[id] = nil
                done(error)
                afterError(error, channel: id)
            }
        case .closeChannel(let id, let done):
            closeChannel(id)
            done()
        case .close(let done):
            shutdown()
            done()
        }
    }

    private func closeChannel(_ id: UInt16) {
        if let channel = channels[id] { flushAcks(channel) }
        guard let channel = channels.removeValue(forKey: id) else { return }
        let closed = AMQPError(.closed, "channel \(id) was closed before the operation completed")
        for pending in channel.takeAllUnconfirmed() { pending.done(.failure(closed)) }
        for consumer in channel.consumers.values { consumer.deliveries.finish() }
        heldPublishes.removeAll { request in
            guard request.channel == id else { return false }
            request.done(.failure(closed))
            return true
        }
        heldCalls.removeAll { call in
            guard call.channel == id else { return false }
            call.fail(closed)
            return true
        }
        guard let session, channel.open else { return }
        do {
            try session.closeChannel(id)
        } catch {
            if error.isFatalToConnection { connectionLost(error) }
        }
    }

    // MARK: Publishing and confirms

    private func publish(_ request: PublishRequest) {
        if request.deadline == nil { request.deadline = commandsTakenAt + request.timeout }
        guard let channel = channels[request.channel] else {
            return request.done(.failure(AMQPError(.closed, "publish on closed channel \(request.channel)")))
        }
        guard let session, blocked == nil, channel.open else {
            heldPublishes.append(request)
            return
        }
        do {
            try session.publish(
                request.channel, exchange: request.exchange, routingKey: request.routingKey, mandatory: request.mandatory,
                properties: channel.confirms && request.mandatory ? Self.tagged(request.properties, sequence: channel.nextSequence) : request.properties,
                body: request.body)
        } catch {
            request.done(.failure(error))
            connectionLost(error)
            return
        }
        guard channel.confirms else { return request.done(.success(())) }
        channel.sent(PendingConfirm(deadline: request.deadline!, timeout: request.timeout, done: request.done))
    }

    /// A mandatory publish's properties with its sequence number in a header.
    private static func tagged(_ properties: AMQPProperties, sequence: UInt64) -> AMQPProperties {
        var properties = properties
        var headers = properties.headers ?? [:]
        headers[publishSequenceHeader] = .int64(Int64(sequence))
        properties.headers = headers
        return properties
    }

    private func confirm(_ channel: ChannelState, tag: UInt64, multiple: Bool, nacked: Bool) {
        if multiple { multipleConfirms.add(1, ordering: .relaxed) }
        for pending in channel.settle(upTo: tag, multiple: multiple) {
            if nacked {
                pending.done(.failure(AMQPError(.publishNacked, "the broker nacked the publish")))
            } else if let returned = pending.returned {
                pending.done(.failure(AMQPError(
                    .publishReturned, "no queue is bound to exchange '\(returned.exchange)' for routing key '\(returned.routingKey)'",
                    replyCode: returned.replyCode, replyText: returned.replyText)))
            } else {
                pending.done(.success(()))
            }
        }
    }

    private func flushHeld() {
        if !heldCalls.isEmpty {
            let calls = heldCalls
            heldCalls = []
            for call in calls { perform(call) }
        }
        if blocked == nil, !heldPublishes.isEmpty {
            let publishes = heldPublishes
            heldPublishes = []
            for request in publishes { publish(request) }
        }
    }

    // MARK: Synchronous methods and settlements

    private func perform(_ call: Call) {
        guard let session, let channel = channels[call.channel], channel.open else {
            if channels[call.channel] == nil {
                call.fail(AMQPError(.closed, "\(call.context): channel \(call.channel) is closed"))
            } else {
                heldCalls.append(call)
            }
            return
        }
        if let error = call.run(session, call.channel, channel.epoch) {
            afterError(error, channel: call.channel)
            return
        }
        switch call.recovery {
        case .add(let key, let replay):
            recovery.removeAll { $0.key == key }
            recovery.append((key, replay))
        case .remove(let matches):
            recovery.removeAll { matches($0.key) }
        case nil:
            break
        }
    }

    private func settle(_ settlement: Settlement) {
        guard session != nil, let channel = channels[settlement.channel], channel.accepts(epoch: settlement.generation) else {
            logger.debug("amqp.settle.stale", metadata: ["amqp.delivery_tag": "\(settlement.deliveryTag)"])
            return
        }
        if case .ack = settlement.kind, !settlement.multiple {
            if channel.queueAck(settlement.deliveryTag, epoch: settlement.generation) { channelsWithAcks.insert(channel.id) }
            return
        }
        flushAcks(channel)
        guard let session else { return }
        let tag = settlement.deliveryTag
        do {
            switch settlement.kind {
            case .ack: try session.ack(channel.id, tag: tag, multiple: settlement.multiple)
            case .nack(let requeue): try session.nack(channel.id, tag: tag, multiple: settlement.multiple, requeue: requeue)
            case .reject(let requeue): try session.reject(channel.id, tag: tag, requeue: requeue)
            }
            if settlement.multiple { channel.unsettled.removeAll(upTo: tag) } else { channel.unsettled.remove(tag) }
        } catch {
            connectionLost(error)
        }
    }

    private func flushAcks() {
        guard !channelsWithAcks.isEmpty else { return }
        for id in channelsWithAcks.sorted() {
            if let channel = channels[id] { flushAcks(channel) }
        }
        channelsWithAcks.removeAll(keepingCapacity: true)
    }

    /// Sends a channel's queued acks (`ChannelState.takeQueuedAcks` decides how).
    private func flushAcks(_ channel: ChannelState) {
        guard let session else { return }
        do {
            switch channel.takeQueuedAcks() {
            case .none: break
            case .multiple(let tag): try session.ack(channel.id, tag: tag, multiple: true)
            case .single(let tags): for tag in tags { try session.ack(channel.id, tag: tag, multiple: false) }
            }
        } catch {
            connectionLost(error)
        }
    }

    /// A failed call may have closed its channel (reopen it) or the connection (reconnect).
    private func afterError(_ error: AMQPError, channel id: UInt16) {
        if error.code == .channelClosed, let channel = channels[id] {
            channelClosed(channel, error)
        } else if error.isFatalToConnection {
            connectionLost(error)
        }
    }

    // MARK: Incoming frames

    private func handle(_ frame: amqp_frame_t, _ session: RabbitSession) throws(AMQPError) {
        let id = frame.channel
        defer { if self.session === session { session.releaseBuffers(channel: id) } }
        switch frame.frame_type {
        case FrameType.method:
            try handleMethod(frame.payload.method, channel: id, session)
        case FrameType.header:
            guard let channel = channels[id], channel.content != nil, let decoded = frame.payload.properties.decoded else { return }
            var tooDeep = false
            let properties = AMQPProperties(amqp: decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee, headersTooDeep: &tooDeep)
            // The size is the sender's word (a 64-bit field): never trusted for arithmetic.
            channel.content!.header(properties, bodySize: Int(exactly: frame.payload.properties.body_size) ?? Int.max, headersTooDeep: tooDeep)
            try completeContent(channel, session)
        case FrameType.body:
            guard let channel = channels[id], channel.content != nil else { return }
            let fragment = frame.payload.body_fragment
            if fragment.len > 0 { channel.content!.append(UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.len)) }
            try completeContent(channel, session)
        default:
            break
        }
    }

    private func handleMethod(_ method: amqp_method_t, channel id: UInt16, _ session: RabbitSession) throws(AMQPError) {
        func decoded<T>(_ type: T.Type) -> T { method.decoded.assumingMemoryBound(to: T.self).pointee }
        switch method.id {
        case Method.basicDeliver:
            let deliver = decoded(amqp_basic_deliver_t.self)
            channels[id]?.content = IncomingContent(kind: .delivery(
                tag: deliver.delivery_tag, redelivered: deliver.redelivered != 0, exchange: String(amqp: deliver.exchange),
                routingKey: String(amqp: deliver.routing_key), consumerTag: String(amqp: deliver.consumer_tag)))
        case Method.basicReturn:
            let returned = decoded(amqp_basic_return_t.self)
            channels[id]?.content = IncomingContent(kind: .returned(AMQPReturnedMessage(
                replyCode: Int(returned.reply_code), replyText: String(amqp: returned.reply_text),
                exchange: String(amqp: returned.exchange), routingKey: String(amqp: returned.routing_key))))
        case Method.basicAck:
            let ack = decoded(amqp_basic_ack_t.self)
            if let channel = channels[id] { confirm(channel, tag: ack.delivery_tag, multiple: ack.multiple != 0, nacked: false) }
        case Method.basicNack:
            let nack = decoded(amqp_basic_nack_t.self)
            if let channel = channels[id] { confirm(channel, tag: nack.delivery_tag, multiple: nack.multiple != 0, nacked: true) }
        case Method.basicCancel:
            let cancel = decoded(amqp_basic_cancel_t.self)
            let tag = String(amqp: cancel.consumer_tag)
            if let consumer = channels[id]?.consumers.removeValue(forKey: tag) {
                logger.warning("amqp.consumer.cancelled_by_broker", metadata: ["amqp.queue": "\(consumer.queue)", "amqp.consumer_tag": "\(tag)"])
                consumer.deliveries.finish(throwing: AMQPError(.consumerCancelled, "the broker cancelled the consumer on '\(consumer.queue)'"))
            }
        case Method.channelClose:
            let close = decoded(amqp_channel_close_t.self)
            var ok = amqp_channel_close_ok_t()
            try session.send(method: Method.channelCloseOK, channel: id, &ok)
            if let channel = channels[id] {
                channelClosed(channel, AMQPError(
                    .channelClosed, "the broker closed channel \(id)", replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text)))
            }
        case Method.connectionClose:
            let close = decoded(amqp_connection_close_t.self)
            var ok = amqp_connection_close_ok_t()
            try? session.send(method: Method.connectionCloseOK, channel: 0, &ok)
            throw AMQPError(.connectionClosed, "the broker closed the connection", replyCode: Int(close.reply_code), replyText: String(amqp: close.reply_text))
        case Method.connectionBlocked:
            let reason = String(amqp: decoded(amqp_connection_blocked_t.self).reason)
            blocked = reason
            logger.warning("amqp.connection.blocked", metadata: ["amqp.reason": "\(reason)"])
            status.set(.blocked(reason: reason))
        case Method.connectionUnblocked:
            blocked = nil
            logger.notice("amqp.connection.unblocked")
            status.set(.connected(endpoint: session.endpoint.redactedDescription))
        case Method.channelFlow:
            var ok = amqp_channel_flow_ok_t(active: decoded(amqp_channel_flow_t.self).active)
            try session.send(method: Method.channelFlowOK, channel: id, &ok)
        default:
            logger.debug("amqp.frame.ignored", metadata: ["amqp.method": "\(method.id)", "amqp.channel": "\(id)"])
        }
    }

    private func completeContent(_ channel: ChannelState, _ session: RabbitSession) throws(AMQPError) {
        guard let content = channel.content, content.isComplete else { return }
        channel.content = nil
        switch content.kind {
        case .delivery(let tag, let redelivered, let exchange, let routingKey, let consumerTag):
            let delivery = AMQPDelivery(
                body: content.body, properties: content.properties, deliveryTag: tag, redelivered: redelivered,
                exchange: exchange, routingKey: routingKey, consumerTag: consumerTag, messageCount: nil,
                channelID: channel.id, generation: channel.epoch, headersTooDeep: content.headersTooDeep)
            if let consumer = channel.consumers[consumerTag] {
                channel.unsettled.append(tag)
                consumer.deliveries.yield(delivery)
            } else {
                // Arrived after the consumer was cancelled: give it back to the queue.
                try session.nack(channel.id, tag: tag, multiple: false, requeue: true)
            }
        case .returned(let returned):
            let sequence = content.properties.headers?[publishSequenceHeader]?.intValue.flatMap { UInt64(exactly: $0) }
            if sequence.map({ channel.unconfirmed.markReturned($0, returned) }) != true {
                logger.warning("amqp.publish.returned", metadata: [
                    "amqp.exchange": "\(returned.exchange)", "amqp.routing_key": "\(returned.routingKey)",
                    "amqp.reply_code": "\(returned.replyCode)",
                ])
            }
        }
    }

    // MARK: Failures, recovery and shutdown

    /// The broker closed a channel (e.g. 404 publishing to a missing exchange): its
    /// unconfirmed publishes can never be confirmed now, so they fail with the broker's
    /// reason, and the channel is reopened with its consumers.
    private func channelClosed(_ channel: ChannelState, _ error: AMQPError) {
        logger.warning("amqp.channel.closed", metadata: ["amqp.channel": "\(channel.id)", "amqp.error": "\(error)"])
        channel.open = false
        channel.content = nil
        for pending in channel.takeAllUnconfirmed() { pending.done(.failure(error)) }
        guard let session else { return }
        do {
            try reopen(channel, session)
        } catch {
            if error.isFatalToConnection { connectionLost(error) }
        }
    }

    private func reopen(_ channel: ChannelState, _ session: RabbitSession) throws(AMQPError) {
        try session.openChannel(channel.id, confirms: channel.confirms, prefetch: channel.prefetch)
        epochs += 1
        channel.reopened(epoch: epochs)
        for consumer in channel.consumers.values.sorted(by: { $0.tag < $1.tag }) {
            do {
                try session.consume(channel.id, queue: consumer.queue, tag: consumer.tag, exclusive: consumer.exclusive, arguments: consumer.arguments)
            } catch where error.code == .channelClosed {
                // This consumer cannot come back (its queue is gone); the others can.
                channel.consumers[consumer.tag] = nil
                consumer.deliveries.finish(throwing: error)
                return try reopen(channel, session)
            }
        }
    }

    private func connectionLost(_ error: AMQPError) {
        guard session != nil else { return }
        logger.warning("amqp.connection.lost", metadata: ["amqp.error": "\(error)"])
        session = nil
        blocked = nil
        let lost = AMQPError(.connectionLost, "publish not confirmed before the connection was lost (\(error.context))")
        for channel in channels.values.sorted(by: { $0.id < $1.id }) {
            channel.open = false
            channel.content = nil
            for pending in channel.takeAllUnconfirmed() { pending.done(.failure(lost)) }
        }
        reconnectAttempt = 0
        nextReconnect = .now + configuration.reconnect.delay(attempt: 0)
        status.set(.reconnecting(attempt: 0, lastError: error))
    }

    private func reconnect() {
        do {
            try connect()
            reconnectAttempt = 0
        } catch {
            reconnectAttempt += 1
            nextReconnect = .now + configuration.reconnect.delay(attempt: reconnectAttempt)
            logger.warning("amqp.reconnect.failed", metadata: ["amqp.attempt": "\(reconnectAttempt)", "amqp.error": "\(error)"])
            status.set(.reconnecting(attempt: reconnectAttempt, lastError: error))
        }
    }

    /// Tries every endpoint once, starting with the last one that worked; then re-opens
    /// channels, re-declares the recorded topology and resumes consumers.
    private func connect() throws(AMQPError) {
        var lastError = AMQPError(.invalidConfiguration, "no endpoints configured")
        let endpoints = configuration.endpoints
        for offset in 0..<endpoints.count {
            let index = (endpointIndex + offset) % endpoints.count
            do {
                let session = try RabbitSession(endpoint: endpoints[index], configuration: configuration)
                try recover(session)
                endpointIndex = index
                self.session = session
                blocked = nil
                logger.info("amqp.connection.open", metadata: ["amqp.endpoint": "\(session.endpoint.redactedDescription)"])
                status.set(.connected(endpoint: session.endpoint.redactedDescription))
                return
            } catch {
                lastError = error
                logger.debug("amqp.connect.failed", metadata: ["amqp.endpoint": "\(endpoints[index].redactedDescription)", "amqp.error": "\(error)"])
            }
        }
        throw lastError
    }

    private func recover(_ session: RabbitSession) throws(AMQPError) {
        let control = channels[Self.controlChannel]!
        try session.openChannel(control.id, confirms: false, prefetch: nil)
        epochs += 1
        control.reopened(epoch: epochs)
        for record in recovery {
            do {
                try record.replay(session, control.id)
            } catch where error.code == .channelClosed {
                logger.error("amqp.recovery.failed", metadata: ["amqp.declaration": "\(record.key)", "amqp.error": "\(error)"])
                try session.openChannel(control.id, confirms: false, prefetch: nil)
            }
        }
        for channel in channels.values.sorted(by: { $0.id < $1.id }) where channel.id != control.id {
            try reopen(channel, session)
        }
    }

    private func sweepIfDue() {
        let now = ContinuousClock.now
        guard now >= nextSweep else { return }
        nextSweep = now + Self.pollInterval
        for channel in channels.values {
            for pending in channel.unconfirmed.removeExpired(at: now) {
                pending.done(.failure(AMQPError(.timeout, "no publisher confirm within \(pending.timeout)")))
            }
        }
        let why = blocked.map { "the broker blocked publishing (\($0))" } ?? (session == nil ? "not connected to the broker" : "the channel is not open")
        heldPublishes.removeAll { request in
            guard request.deadline! <= now else { return false }
            request.done(.failure(AMQPError(.timeout, "publish waited \(request.timeout): \(why)")))
            return true
        }
        heldCalls.removeAll { call in
            guard call.deadline <= now else { return false }
            call.fail(AMQPError(.timeout, "\(call.context): \(why)"))
            return true
        }
    }

    private func shutdown() {
        flushAcks()
        stopped = true
        if let session {
            session.close()
            self.session = nil
        }
        let closed = AMQPError(.closed, "the connection was closed before the operation completed")
        for channel in channels.values {
            for pending in channel.takeAllUnconfirmed() { pending.done(.failure(closed)) }
            for consumer in channel.consumers.values { consumer.deliveries.finish() }
            channel.consumers.removeAll()
        }
        for request in heldPublishes { request.done(.failure(closed)) }
        for call in heldCalls { call.fail(closed) }
        heldPublishes = []
        heldCalls = []
        logger.info("amqp.connection.closed")
    }
}

extension Command {
    func fail(_ error: AMQPError) {
        switch self {
        case .publish(let request): request.done(.failure(error))
        case .call(let call): call.fail(error)
        case .settle: break
        case .registerChannel(_, _, _, let done): done(error)
        case .closeChannel(_, let done), .close(let done): done()
        }
    }
}
