/// What a consumer did, as typed values for whoever embeds or measures it (tests, the
/// benchmark): observe these rather than matching log text, which may change.
public enum ConsumerEvent: Sendable {
    /// A batch's transaction committed: the ids of the events it applied and of those the
    /// inbox had already seen. Sent before the batch's acks.
    case committed(applied: [String], duplicates: [String])
    /// A failed event was republished, confirmed, to a delay tier (`retry`) or to the
    /// dead-letter queue; `attempt` is the attempt that failed.
    case failed(messageID: String?, attempt: Int, destination: FailurePolicy.Destination, failure: HandlerFailure)
    /// A failed event could not be republished: it went back to its queue instead.
    case republishFailed(messageID: String?, error: String)
}
