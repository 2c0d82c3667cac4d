/// The one error type of the AMQP module: what went wrong (`code`), what the broker said
/// (`replyCode`/`replyText`, when it said anything) and what Warren was doing (`context`).
public struct AMQPError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// The URL or configuration cannot be used.
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
        /// TCP or TLS connection, or the AMQP handshake, failed.
        public static let connectionFailed = Code(name: "connectionFailed")
        /// The broker refused the credentials.
        public static let authenticationFailed = Code(name: "authenticationFailed")
        /// TLS set-up or verification failed (CA, certificate, hostname).
        public static let tls = Code(name: "tls")
        /// The connection was lost; work in flight on it did not complete.
        public static let connectionLost = Code(name: "connectionLost")
        /// The broker closed the connection (`replyCode`/`replyText` say why).
        public static let connectionClosed = Code(name: "connectionClosed")
        /// The broker closed the channel (`replyCode`/`replyText` say why), e.g. 404, 406.
        public static let channelClosed = Code(name: "channelClosed")
        /// The broker nacked a publish: it did not take responsibility for the message.
        public static let publishNacked = Code(name: "publishNacked")
        /// A mandatory publish could not be routed to any queue (`replyCode` 312).
        public static let publishReturned = Code(name: "publishReturned")
        /// The message cannot be encoded in AMQP (e.g. a short-string field over 255 bytes);
        /// nothing was sent, and the connection is unaffected.
        public static let invalidMessage = Code(name: "invalidMessage")
        /// The operation did not complete in time (and may still complete at the broker).
        public static let timeout = Code(name: "timeout")
        /// The delivery came from an earlier connection; the broker has requeued it.
        public static let staleDelivery = Code(name: "staleDelivery")
        /// The broker cancelled the consumer (queue deleted, or a node failed).
        public static let consumerCancelled = Code(name: "consumerCancelled")
        /// The connection was closed by this client.
        public static let closed = Code(name: "closed")
        /// rabbitmq-c reported an error not covered above.
        public static let library = Code(name: "library")
    }

    public var code: Code
    /// The AMQP reply code the broker sent (404, 406, 320, 312, …), if any.
    public var replyCode: Int?
    /// The broker's reply text, if any.
    public var replyText: String?
    /// What Warren was doing, e.g. "queue.declare orders".
    public var context: String

    public init(_ code: Code, _ context: String, replyCode: Int? = nil, replyText: String? = nil) {
        self.code = code
        self.context = context
        self.replyCode = replyCode
        self.replyText = replyText
    }

    public var description: String {
        var text = "AMQP \(code): \(context)"
        if let replyCode { text += " (\(replyCode)" + (replyText.map { " \($0)" } ?? "") + ")" }
        return text
    }
}
