import Postgres
import WarrenCore

/// A consumer's business logic: what it does to PostgreSQL for a batch of events.
///
/// The runtime calls `apply` inside a transaction that also records the events in the
/// inbox, with only events that passed schema validation and were not seen before, in
/// delivery order. Return the failures of single events (by index into `events`) to
/// retry or dead-letter them while the rest commit; such an event must have left no
/// effects. Throw to fail the whole batch: the runtime then runs each event alone to
/// find the culprit.
public protocol ConsumerModule: Sendable {
    /// The consumer's name in the topology, e.g. `users.projection`.
    var name: String { get }
    func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure]
}

/// Why a handler could not apply an event.
public struct HandlerFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// May work later (provider down, lock timeout): retried through the delay tiers.
        case transient
        /// Will never work (conflicting data, invalid request): dead-lettered at once.
        case permanent
    }

    public var kind: Kind
    /// Short machine-readable type for `x-warren-error-type`, e.g. `payment.conflict`.
    public var type: String
    public var message: String

    public init(_ kind: Kind, type: String, _ message: String) {
        self.kind = kind
        self.type = type
        self.message = message
    }

    public static func permanent(_ type: String, _ message: String) -> HandlerFailure { .init(.permanent, type: type, message) }
    public static func transient(_ type: String, _ message: String) -> HandlerFailure { .init(.transient, type: type, message) }

    public var description: String { "\(kind) \(type): \(message)" }
}
