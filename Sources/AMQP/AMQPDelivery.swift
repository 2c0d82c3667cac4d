/// A message the broker delivered to a consumer or handed out by `basic.get`.
public struct AMQPDelivery: Sendable {
    public var body: [UInt8]
    public var properties: AMQPProperties
    public var deliveryTag: UInt64
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    /// The consumer it was delivered to; nil for `basic.get`.
    public var consumerTag: String?
    /// How many messages remained in the queue (`basic.get` only).
    public var messageCount: UInt32?

    /// Which connection the delivery tag belongs to: tags are only valid on the
    /// connection (and channel) that delivered them.
    let channelID: UInt16
    let generation: UInt64

    /// The headers nested field tables or arrays deeper than Warren decodes (32 levels):
    /// the deeper values read as `.void`. Hostile or broken input; consumers refuse it.
    public var headersTooDeep = false

    /// A string property (message id, type, …) or a header name was not valid UTF-8 and
    /// reads with replacement characters: a copy would not carry the sender's bytes, so
    /// consumers leave such a message to the broker's dead-lettering and DLQ passes leave
    /// it where it is. (Header values that are not UTF-8 are kept exactly:
    /// `AMQPFieldValue.invalidUTF8String`.)
    public var stringsNotUTF8 = false

    /// Set when the body was over the consumer's `maxBodySize`: its frames were read and
    /// dropped, `body` is empty, and this is the size the broker announced.
    public var discardedBodySize: Int?
}

/// A message the broker returned because a mandatory publish matched no queue.
public struct AMQPReturnedMessage: Sendable {
    public var replyCode: Int
    public var replyText: String
    public var exchange: String
    public var routingKey: String
}
