import AMQP
import Foundation
import Postgres
import WarrenCore

/// The consumer's decisions about a delivery that did not apply: which attempt it is on,
/// whether an error is transient or permanent, where the event goes next and with which
/// headers. No I/O, so every rule is unit tested without a broker or database.
public struct FailurePolicy: Sendable {
    var consumer: String
    /// One queue per delay tier, shortest delay first.
    var retryQueues: [String]
    var deadLetterQueue: String
    var maxAttempts: Int

    /// The highest `x-warren-attempts` a delivery may carry. Warren never writes more than
    /// `max_attempts` (at most 1,000); anything past this bound is not Warren's and is
    /// refused before any arithmetic is done with it.
    static let attemptsLimit: Int64 = 1_000_000

    /// Where a failed event goes.
    public enum Destination: Equatable, Sendable {
        /// Delay tier `tier` (0-based) of `retryQueues`, with the attempt counted.
        case retry(queue: String, tier: Int)
        case deadLetter(queue: String)

        public var queue: String {
            switch self {
            case .retry(let queue, _), .deadLetter(let queue): queue
            }
        }
    }

    /// The attempt a delivery is on: 1 for a first delivery, `x-warren-attempts` + 1 after
    /// retries. A header that is not an integer in `0...attemptsLimit` (anyone can publish
    /// to the exchange) is a permanent failure naming the header, never a trap.
    static func attempt(_ headers: AMQPTable?) -> Result<Int, HandlerFailure> {
        guard let value = headers?[WarrenHeader.attempts] else { return .success(1) }
        guard let count = value.intValue, (0...attemptsLimit).contains(count) else {
            return .failure(.permanent(
                "header.\(WarrenHeader.attempts)",
                "\(WarrenHeader.attempts) is \(Self.describe(value)): must be an integer from 0 to \(attemptsLimit)"))
        }
        return .success(Int(count) + 1)
    }

    /// What the consumer refuses before decoding the body: headers it cannot trust.
    static func refusal(of delivery: AMQPDelivery) -> HandlerFailure? {
        if delivery.headersTooDeep {
            return .permanent("header.depth", "headers nest tables or arrays deeper than 32 levels")
        }
        if case .failure(let failure) = attempt(delivery.properties.headers) { return failure }
        return nil
    }

    /// A transient failure goes to the delay tier of its attempt (the last tier once the
    /// attempts outnumber the tiers) until `maxAttempts`; anything else to the DLQ.
    func destination(of failure: HandlerFailure, attempt: Int) -> Destination {
        guard failure.kind == .transient, attempt < maxAttempts, !retryQueues.isEmpty else {
            return .deadLetter(queue: deadLetterQueue)
        }
        let tier = min(max(attempt - 1, 0), retryQueues.count - 1)
        return .retry(queue: retryQueues[tier], tier: tier)
    }

    /// The delivery's headers plus Warren's failure bookkeeping (see `WarrenHeader`).
    func headers(for delivery: AMQPDelivery, attempt: Int, failure: HandlerFailure, at date: Date) -> AMQPTable {
        var headers = delivery.properties.headers ?? [:]
        let now = AMQPFieldValue.string(RFC3339.format(date))
        headers[WarrenHeader.attempts] = .int64(Int64(attempt))
        headers[WarrenHeader.consumer] = .string(consumer)
        headers[WarrenHeader.errorType] = .string(failure.type)
        headers[WarrenHeader.error] = .string(String(failure.message.prefix(1000)))
        headers[WarrenHeader.lastFailedAt] = now
        if headers[WarrenHeader.firstFailedAt] == nil { headers[WarrenHeader.firstFailedAt] = now }
        // A retried message comes back from its delay queue with the consumer's queue as
        // exchange-less routing key; the first failure recorded where it really came from.
        if headers[WarrenHeader.originalExchange] == nil { headers[WarrenHeader.originalExchange] = .string(delivery.exchange) }
        if headers[WarrenHeader.originalRoutingKey] == nil { headers[WarrenHeader.originalRoutingKey] = .string(delivery.routingKey) }
        headers[publishSequenceHeader] = nil
        return headers
    }

    /// Transient or permanent, for an error a module threw.
    static func classify(_ error: any Error) -> HandlerFailure {
        switch error {
        case let failure as HandlerFailure:
            return failure
        case let error as PostgresError:
            // Data exceptions and integrity violations will fail the same way every time.
            let permanent = error.sqlState.map { $0.hasPrefix("22") || $0.hasPrefix("23") } ?? false
            return HandlerFailure(permanent ? .permanent : .transient, type: "postgres.\(error.sqlState ?? "error")", error.description)
        default:
            return .transient("handler.error", "\(error)")
        }
    }

    /// A header value in an error message: integers as numbers, other types by kind
    /// (their content is untrusted and may be large).
    private static func describe(_ value: AMQPFieldValue) -> String {
        switch value {
        case .uint64(let v): "\(v)"
        case .timestamp(let v): "\(v)"
        default: value.intValue.map { "\($0)" } ?? "not an integer"
        }
    }
}
