import CRabbitMQ
import Foundation
import Glibc
import Logging
import Locking
import struct Synchronization.Atomic

/// Mandatory publishes carry their channel sequence number in this header, so that a
/// `basic.return` (which has no delivery tag) can be matched to the publish that caused it.
public let publishSequenceHeader = "x-warren-publish-seq"

/// The driver of one broker connection: the only thread that ever touches it.
///
/// rabbitmq-c 0.11 does nothing in the background: heartbeats are only sent and checked,
/// and confirms, returns, deliveries and `connection.blocked` only read, while someone
/// calls into it. So a dedicated thread loops: run queued commands, read every frame
/// available without waiting, expire deadlines, then sleep in `poll` on the socket and an
/// eventfd (which `submit` writes to) for at most 100 ms. Callers never block: they queue
/// a command and await its completion.
///
/// Every decision (what to send, hold, fail, settle, reopen) is the
/// `ConnectionStateMachine`'s; this type only moves bytes and runs what it answers.
///
/// `@unchecked Sendable`: `mailbox` and `status` are behind mutexes, `wakeFD`,
/// `configuration` and `logger` never change, and every other property is read and
/// written only on the I/O thread (started once in `start`, never shared).
final class IOLoop: @unchecked Sendable {
    static let controlChannel = ConnectionStateMachine.controlChannel
    private static let pollInterval = Duration.milliseconds(100)

    let configuration: AMQPConfiguration
    let logger: Logger
    let status: ConnectionStatus
    let metrics: AMQPMetrics
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

    private let machine = ConnectionStateMachine()
    private var session: RabbitSession?
    private var stopped = false
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
        metrics = AMQPMetrics(connection: configuration.connectionName)
        status = ConnectionStatus(metrics: metrics)
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(wakeFD >= 0, "eventfd failed: errno \(errno)")
    }

    deinit {
        Glibc.close(wakeFD)
    }

    /// Starts the thread and returns once the first connection is up, or throws the error
    /// of the last endpoint tried. Reconnecting only starts after a first success, unless
    /// the configuration `startsWithoutBroker` and the first failure was the network's.
    func start() async throws(AMQPError) {
        guard !hasStarted.exchange(true, ordering: .relaxed) else {
            throw AMQPError(.library, "the connection was already started")
        }
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                threadMain { continuation.resume(returning: $0) }
            }
            thread.name = "warren-amqp"
            // rabbitmq-c 0.11 decodes nested header tables recursively (0.14 caps it at
            // 100), and a content header may nest ~26,000 arrays within frame_max: a few MB
            // of C frames. Set, not inherited from `ulimit -s`, which may be smaller.
            thread.stackSize = 16 << 20
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

    // MARK: The loop

    private func threadMain(started: (Result<Void, AMQPError>) -> Void) {
        // Commands queued before the first connection (a service that opened a channel
        // while the connection's own service was starting) fail with its error.
        var leftoverError = AMQPError(.closed, "the connection is closed")
        do {
            do throws(AMQPError) {
                try connect()
            } catch where configuration.startsWithoutBroker && error.code == .connectionFailed {
                // Retried from the loop like a lost connection; the caller goes on. This
                // was the first failed attempt, counted as `reconnect()` counts them.
                reconnectAttempt = 1
                nextReconnect = .now + configuration.reconnect.delay(attempt: reconnectAttempt)
                logger.warning("amqp.connect.waiting", metadata: ["amqp.attempt": "\(reconnectAttempt)", "amqp.error": "\(error)"])
                status.set(.reconnecting(attempt: reconnectAttempt, lastError: error))
            }
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
        defer { status.heldPublishes.store(machine.heldPublishCount, ordering: .relaxed) }
        let commands = mailbox.withLock { box -> [Command] in
            defer { box.commands.removeAll(keepingCapacity: true) }
            return box.commands
        }
        if !commands.isEmpty { commandsTakenAt = .now }
        // Work held while disconnected or blocked goes before newer commands (order).
        if session != nil { retryHeldWork() }
        // Publishes and acks are written together once the batch is done: on plain TCP
        // the session buffers their frames and `flush` writes them with one call. On TLS
        // rabbitmq-c sends each frame itself, so the kernel holds them (TCP_CORK) until
        // all are written, and a burst of publishes (three frames each) leaves as a few
        // full TCP segments instead of one small segment per frame. Never corked while a
        // synchronous method runs: its request would sit in the cork (up to 200 ms) while
        // rabbitmq-c waits for the reply (the session flushes its buffer before one).
        var corked: RabbitSession?
        for (index, command) in commands.enumerated() {
            if command.isOneWay {
                if corked == nil, commands.count > 1, let session, !session.writesInBatches {
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
        sendQueuedAcks()
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
        retryHeldWork()
        guard self.session === session, flush(session) else { return }
        var frames = 0
        do {
            // Bounded, so a flood of deliveries cannot starve queued acks and publishes.
            while frames < 256, self.session === session, let frame = try session.nextFrame() {
                defer { if self.session === session { session.releaseBuffers(channel: frame.channel) } }
                try handle(InboundFrame(frame), session)
                frames += 1
            }
        } catch {
            connectionLost(error)
            return
        }
        sweepIfDue()
        // Acks and nacks that handling the frames produced go out before any sleep.
        guard self.session === session, flush(session) else { return }
        if commands.isEmpty, frames == 0, !session.hasBufferedInput {
            waitForWork(socket: session.fileDescriptor, until: .now + Self.pollInterval)
        }
    }

    /// Writes the session's buffered frames; false (and the connection is lost) if that failed.
    private func flush(_ session: RabbitSession) -> Bool {
        do {
            try session.flush()
            return true
        } catch {
            connectionLost(error)
            return false
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

    private func run(_ completions: [ConnectionStateMachine.Completion]) {
        for completion in completions { completion.run() }
    }

    // MARK: Commands

    private func execute(_ command: Command) {
        switch command {
        case .publish(let request):
            publish(request)
        case .call(let call):
            perform(call)
        case .settle(let settlement):
            settle(settlement)
        case .registerChannel(let id, let confirms, let handle, let done):
            guard machine.register(id, confirms: confirms, handle: handle), let session else { return done(nil) }
            do {
                try session.openChannel(id, confirms: confirms, prefetch: nil)
                machine.channelOpened(id)
                done(nil)
            } catch {
                machine.registrationFailed(id)
                done(error)
                if error.isFatalToConnection { connectionLost(error) }
            }
        case .closeChannel(let id, let done):
            let removal = machine.removeChannel(id)
            send(removal.acks, channel: id)
            run(removal.completions)
            if removal.closeAtBroker, let session {
                do {
                    try session.closeChannel(id)
                } catch {
                    if error.isFatalToConnection { connectionLost(error) }
                }
            }
            done()
        case .close(let done):
            shutdown()
            done()
        }
    }

    private func publish(_ request: PublishRequest) {
        switch machine.publish(request, now: commandsTakenAt) {
        case .fail(let error):
            request.done(.failure(error))
        case .hold:
            break
        case .send(let channel, let sequence):
            guard let session else { return }
            do {
                try session.publish(
                    channel.id, exchange: request.exchange, routingKey: request.routingKey, mandatory: request.mandatory,
                    properties: sequence.map { request.properties.tagged(sequence: $0) } ?? request.properties, body: request.body)
            } catch {
                // `invalidMessage`: nothing was sent, the connection goes on.
                request.done(.failure(error))
                if error.isFatalToConnection { connectionLost(error) }
                return
            }
            machine.published(request, on: channel)?.run()
        }
    }

    private func perform(_ call: Call) {
        switch machine.call(call) {
        case .fail(let error):
            call.reply(.failure(error))
        case .hold:
            break
        case .run(let epoch):
            guard let session else { return }
            let result: Result<MethodReply, AMQPError>
            do {
                result = .success(try session.perform(call.method, channel: call.channel, epoch: epoch))
            } catch {
                result = .failure(error)
            }
            let (completions, recovery) = machine.completed(call, result)
            run(completions)
            if case .failure(let error) = result { recover(recovery, channel: call.channel, after: error) }
        }
    }

    private func recover(_ recovery: ConnectionStateMachine.Recovery, channel id: UInt16, after error: AMQPError) {
        switch recovery {
        case .none:
            break
        case .reopenChannel:
            if let completions = machine.channelClosed(id, error) {
                run(completions)
                reopenAfterClose(id, error)
            }
        case .reconnect:
            connectionLost(error)
        }
    }

    private func settle(_ settlement: Settlement) {
        guard case .send(let flush, let settlement) = machine.settle(settlement) else { return }
        send(flush, channel: settlement.channel)
        guard let session else { return }
        let tag = settlement.deliveryTag
        do {
            switch settlement.kind {
            case .ack: try session.ack(settlement.channel, tag: tag, multiple: settlement.multiple)
            case .nack(let requeue): try session.nack(settlement.channel, tag: tag, multiple: settlement.multiple, requeue: requeue)
            case .reject(let requeue): try session.reject(settlement.channel, tag: tag, requeue: requeue)
            }
        } catch {
            connectionLost(error)
        }
    }

    private func sendQueuedAcks() {
        for (channel, frames) in machine.takeQueuedAcks() { send(frames, channel: channel) }
    }

    private func send(_ frames: AckFrames, channel: UInt16) {
        guard let session, frames != .none else { return }
        do {
            switch frames {
            case .none: break
            case .multiple(let tag): try session.ack(channel, tag: tag, multiple: true)
            case .single(let tags): for tag in tags { try session.ack(channel, tag: tag, multiple: false) }
            }
        } catch {
            connectionLost(error)
        }
    }

    /// Gives held work another go (the machine holds again what still cannot go).
    private func retryHeldWork() {
        guard machine.isHoldingWork else { return }
        let (calls, publishes) = machine.takeHeldWork()
        for call in calls { perform(call) }
        for request in publishes { publish(request) }
    }

    // MARK: Frames

    private func handle(_ frame: InboundFrame, _ session: RabbitSession) throws(AMQPError) {
        switch machine.receive(frame) {
        case .none, .ignored:
            if case .ignored(let channel, let method?) = frame {
                logger.debug("amqp.frame.ignored", metadata: ["amqp.method": "\(method)", "amqp.channel": "\(channel)"])
            }
        case .complete(let completions):
            if case .confirm(_, _, true, _) = frame { multipleConfirms.add(1, ordering: .relaxed) }
            run(completions)
        case .consumerCancelled(let consumer, let error):
            logger.warning("amqp.consumer.cancelled_by_broker", metadata: ["amqp.queue": "\(consumer.queue)", "amqp.consumer_tag": "\(consumer.tag)"])
            consumer.deliveries.finish(throwing: error)
        case .deliver(let consumer, let delivery):
            consumer.deliveries.yield(delivery)
        case .requeue(let channel, let tag):
            // Arrived after the consumer was cancelled: give it back to the queue.
            try session.nack(channel, tag: tag, multiple: false, requeue: true)
        case .unmatchedReturn(let returned):
            logger.warning("amqp.publish.returned", metadata: [
                "amqp.exchange": "\(returned.exchange)", "amqp.routing_key": "\(returned.routingKey)", "amqp.reply_code": "\(returned.replyCode)",
            ])
        case .channelClosed(let id, let error, let completions, let reopen):
            // First: the machine no longer holds these publishes, so a failed close-ok
            // write (which loses the connection) must not lose their callers.
            run(completions)
            var ok = amqp_channel_close_ok_t()
            try session.send(method: Method.channelCloseOK, channel: id, &ok)
            if reopen { reopenAfterClose(id, error) }
        case .connectionClosed(let error):
            var ok = amqp_connection_close_ok_t()
            try? session.send(method: Method.connectionCloseOK, channel: 0, &ok)
            throw error
        case .blocked(let reason):
            logger.warning("amqp.connection.blocked", metadata: ["amqp.reason": "\(reason)"])
            status.set(.blocked(reason: reason))
        case .unblocked:
            logger.notice("amqp.connection.unblocked")
            status.set(.connected(endpoint: session.endpoint.redactedDescription))
        case .flowOK(let channel, let active):
            var ok = amqp_channel_flow_ok_t(active: active ? 1 : 0)
            try session.send(method: Method.channelFlowOK, channel: channel, &ok)
        }
    }

    // MARK: Failures, recovery and shutdown

    private func reopenAfterClose(_ id: UInt16, _ error: AMQPError) {
        logger.warning("amqp.channel.closed", metadata: ["amqp.channel": "\(id)", "amqp.error": "\(error)"])
        guard let session else { return }
        do {
            try reopen(id, session)
        } catch {
            if error.isFatalToConnection { connectionLost(error) }
        }
    }

    /// Opens channel `id` again with its settings and resumes its consumers; a consumer
    /// whose queue is gone ends with the broker's error and the others resume.
    private func reopen(_ id: UInt16, _ session: RabbitSession) throws(AMQPError) {
        guard let channel = machine.channels[id] else { return }
        try session.openChannel(id, confirms: channel.confirms, prefetch: channel.prefetch)
        machine.channelOpened(id)
        for consumer in machine.consumers(on: id) {
            do {
                try session.consume(id, queue: consumer.queue, tag: consumer.tag, exclusive: consumer.exclusive, arguments: consumer.arguments)
            } catch where error.code == .channelClosed {
                machine.consumerLost(consumer.tag, on: id, error)?.run()
                return try reopen(id, session)
            }
        }
    }

    private func connectionLost(_ error: AMQPError) {
        guard session != nil else { return }
        session = nil
        logger.warning("amqp.connection.lost", metadata: ["amqp.error": "\(error)"])
        let completions = machine.connectionLost(error) ?? []
        reconnectAttempt = 0
        nextReconnect = .now + configuration.reconnect.delay(attempt: 0)
        status.set(.reconnecting(attempt: 0, lastError: error))
        run(completions)
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
            do throws(AMQPError) {
                let session = try RabbitSession(endpoint: endpoints[index], configuration: configuration)
                machine.connected()
                do throws(AMQPError) {
                    try recover(session)
                } catch {
                    _ = machine.connectionLost(error)
                    throw error
                }
                endpointIndex = index
                self.session = session
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
        let control = Self.controlChannel
        try session.openChannel(control, confirms: false, prefetch: nil)
        machine.channelOpened(control)
        for method in machine.recovery.methods {
            do {
                _ = try session.perform(method, channel: control, epoch: 0)
            } catch where error.code == .channelClosed {
                logger.error("amqp.recovery.failed", metadata: ["amqp.declaration": "\(method.context)", "amqp.error": "\(error)"])
                try session.openChannel(control, confirms: false, prefetch: nil)
                machine.channelOpened(control)
            }
        }
        for id in machine.channels.keys.sorted() where id != control {
            try reopen(id, session)
        }
    }

    private func sweepIfDue() {
        let now = ContinuousClock.now
        guard now >= nextSweep else { return }
        nextSweep = now + Self.pollInterval
        run(machine.expire(now: now))
    }

    private func shutdown() {
        sendQueuedAcks()
        stopped = true
        if let session {
            session.close()
            self.session = nil
        }
        run(machine.shutdown())
        logger.info("amqp.connection.closed")
    }
}

extension Command {
    func fail(_ error: AMQPError) {
        switch self {
        case .publish(let request): request.done(.failure(error))
        case .call(let call): call.reply(.failure(error))
        case .settle: break
        case .registerChannel(_, _, _, let done): done(error)
        case .closeChannel(_, let done), .close(let done): done()
        }
    }
}
