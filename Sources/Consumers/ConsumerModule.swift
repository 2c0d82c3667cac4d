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

/// A consumer whose effect is a call to another system (an email sent, a customer created
/// at Stripe), which no transaction can take back.
///
/// The runtime calls `handle` for one fresh event at a time with no transaction open and
/// no pool connection held, so a slow provider holds no lock and no connection (one
/// database connection is enough). The module reads and records through `database` in
/// short statements of its own and must be idempotent per event by itself: it records
/// what it is about to do before the call and finds that record on a redelivery. The
/// runtime writes the inbox after `handle` returns nil, so a crash in between brings the
/// event back to the module, never loses it.
public protocol CallingModule: Sendable {
    /// The consumer's name in the topology, e.g. `email.notifications`.
    var name: String { get }
    /// Nil when the effect happened (or is not needed), else why not; a thrown error fails
    /// the event as `FailurePolicy.classify` reads it.
    func handle(_ event: CloudEvent, delivery: DeliveryInfo, database: PostgresPool) async throws -> HandlerFailure?
}

/// What a calling module may need to know about the message beyond its event.
public struct DeliveryInfo: Sendable, Equatable {
    /// How many times ops replayed it from the dead-letter queue (`x-warren-replayed`):
    /// 0 for a message never replayed, or one whose header is not a count.
    public var replayed: Int64

    public init(replayed: Int64 = 0) {
        self.replayed = replayed
    }
}

/// A consumer's logic, of either kind.
public enum ConsumerHandler: Sendable {
    /// Effects in PostgreSQL, applied in the batch's transaction with the inbox.
    case transactional(any ConsumerModule)
    /// Effects elsewhere, one event at a time outside any transaction.
    case calling(any CallingModule)

    public var name: String {
        switch self {
        case .transactional(let module): module.name
        case .calling(let module): module.name
        }
    }
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
