/// The AMQP headers Warren writes for its own bookkeeping. Ops tools (and services in
/// other languages) rely on these names: they are part of the public contract.
public enum WarrenHeader {
    /// Processing attempts that failed so far; absent on a first delivery.
    public static let attempts = "x-warren-attempts"
    public static let consumer = "x-warren-consumer"
    public static let errorType = "x-warren-error-type"
    public static let error = "x-warren-error"
    /// RFC 3339 timestamps.
    public static let firstFailedAt = "x-warren-first-failed-at"
    public static let lastFailedAt = "x-warren-last-failed-at"
    public static let originalExchange = "x-warren-original-exchange"
    public static let originalRoutingKey = "x-warren-original-routing-key"
    /// How many times ops replayed the message from a dead-letter queue.
    public static let replayed = "x-warren-replayed"
    public static let replayedAt = "x-warren-replayed-at"
    /// Set when a failed message could not be sent on with its own headers (too large or
    /// not encodable): they were dropped, and this says why.
    public static let headersDropped = "x-warren-headers-dropped"
}
