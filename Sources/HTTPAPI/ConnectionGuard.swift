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
    private var deadline: Scheduled<Void>?
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
        disarm()
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
        deadline?.cancel()
        deadline = nil
    }

    private func arm(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
}
