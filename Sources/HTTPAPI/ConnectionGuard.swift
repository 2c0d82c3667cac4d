import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Keeps slow or greedy clients from starving the server, per connection, in its pipeline
/// (after HTTP decoding):
///
/// - at most `maxConnections` at once: one more is closed as soon as it is accepted;
/// - a request's head must be complete within `headerTimeout` of the connection opening
///   or of the previous response (slowloris: headers sent a byte at a time; also the
///   keep-alive limit between requests);
/// - its body must be complete within `bodyTimeout` of its head, also when it was answered
///   early (401, 413: the rest is read and dropped, closing mid-upload would cost most
///   clients the answer).
///
/// A connection past a deadline is closed; a request in progress gets no answer (the
/// sender may retry: nothing was published for it).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Open connections, shared by every connection's guard.
    final class Counter: Sendable {
        let open = Atomic<Int>(0)
    }

    private let counter: Counter
    private let maxConnections: Int
    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    /// When the connection is closed unless the phase it waits in ends first; nil while a
    /// request is being handled.
    private var deadline: NIODeadline?
    /// One timer per connection, not one per phase: moving `deadline` later (every
    /// request does) costs a clock read; the timer, when it fires, closes the connection
    /// if the deadline has passed, or sleeps again until it.
    private var timer: (task: Scheduled<Void>, at: NIODeadline)?
    private var counted = false

    init(counter: Counter, maxConnections: Int, headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.counter = counter
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let open = counter.open.wrappingAdd(1, ordering: .relaxed).newValue
        counted = true
        guard open <= maxConnections else {
            context.close(promise: nil)
            return
        }
        arm(headerTimeout, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        if counted {
            counter.open.wrappingSubtract(1, ordering: .relaxed)
            counted = false
        }
    }

    /// A request's body is still arriving.
    private var readingBody = false
    /// Requests received (in part or whole) and not answered yet.
    private var unanswered = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            readingBody = true
            arm(bodyTimeout, context: context)
        case .body: break
        case .end:
            readingBody = false
            // Answered early (before its body was read): the next head is awaited; else
            // it is being handled and no deadline runs.
            if unanswered == 0 { arm(headerTimeout, context: context) } else { disarm() }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head, .body:
            context.write(data, promise: promise)
        case .end:
            unanswered = max(0, unanswered - 1)
            if readingBody {
                arm(bodyTimeout, context: context)  // the rest of this body still has its deadline
            } else if unanswered == 0 {
                arm(headerTimeout, context: context)
            } else {
                disarm()  // a pipelined request is being handled
            }
            context.write(data, promise: promise)
        }
    }

    private func disarm() {
        deadline = nil
    }

    private func arm(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        let deadline = NIODeadline.now() + timeout
        self.deadline = deadline
        if let timer, timer.at <= deadline { return }  // it fires first and looks again
        timer?.task.cancel()
        schedule(at: deadline, context: context)
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = (context.eventLoop.scheduleTask(deadline: when) { handler.value.fire(context: bound.value) }, when)
    }

    private func fire(context: ChannelHandlerContext) {
        timer = nil
        guard let deadline else { return }
        if deadline <= .now() {
            context.close(promise: nil)
        } else {
            schedule(at: deadline, context: context)
        }
    }

    private func stopTimer() {
        timer?.task.cancel()
        timer = nil
        deadline = nil
    }
}
