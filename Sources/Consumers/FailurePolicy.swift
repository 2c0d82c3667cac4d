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

    /// The attempt a delivery is on, or why it is refused before its body is decoded:
    /// headers it cannot trust (nested too deep, or an attempt count out of range).
    static func attempt(of delivery: AMQPDelivery) -> Result<Int, HandlerFailure> {
        if delivery.headersTooDeep {
            return .failure(.permanent("header.depth", "headers nest tables or arrays deeper than 32 levels"))
        }
        return attempt(delivery.properties.headers)
    }

    /// `x-warren-replayed` as a count: 0 when absent, negative or not an integer (the
    /// header came off the wire; `dlq replay` counts up from any value it finds).
    static func replayed(_ headers: AMQPTable?) -> Int64 {
        max(headers?[WarrenHeader.replayed]?.intValue ?? 0, 0)
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
        headers[WarrenHeader.error] = .string(Self.prefix(failure.message, bytes: 1000))
        headers[WarrenHeader.lastFailedAt] = now
        if headers[WarrenHeader.firstFailedAt] == nil { headers[WarrenHeader.firstFailedAt] = now }
        // A retried message comes back from its delay queue with the consumer's queue as
        // exchange-less routing key; the first failure recorded where it really came from.
        if headers[WarrenHeader.originalExchange] == nil { headers[WarrenHeader.originalExchange] = .string(delivery.exchange) }
        if headers[WarrenHeader.originalRoutingKey] == nil { headers[WarrenHeader.originalRoutingKey] = .string(delivery.routingKey) }
        headers[publishSequenceHeader] = nil
        return headers
    }

    /// For a delivery that cannot be sent again as it came: its properties without the
    /// sender's headers and without any string property AMQP cannot carry, plus Warren's
    /// failure headers and `x-warren-headers-dropped` saying why. Always encodable.
    func strippedProperties(for delivery: AMQPDelivery, attempt: Int, failure: HandlerFailure, reason: String, at date: Date) -> AMQPProperties {
        var stripped = delivery
        var kept: AMQPTable = [:]
        for name in [WarrenHeader.firstFailedAt, WarrenHeader.originalExchange, WarrenHeader.originalRoutingKey] {
            if let value = delivery.properties.headers?[name]?.stringValue, value.utf8.count <= 1000 { kept[name] = .string(value) }
        }
        // The replay count decides whether a replayed email may be sent again.
        let replayed = Self.replayed(delivery.properties.headers)
        if replayed > 0 { kept[WarrenHeader.replayed] = .int64(replayed) }
        stripped.properties.headers = kept
        var headers = self.headers(for: stripped, attempt: attempt, failure: failure, at: date)
        headers[WarrenHeader.headersDropped] = .string(Self.prefix(reason, bytes: 200))
        var properties = delivery.properties.droppingOverlongStrings()
        properties.headers = headers
        properties.userID = nil  // the broker checks it against the publishing user
        return properties
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

    /// At most `bytes` bytes of UTF-8, cut at a character boundary (a single character
    /// can be many bytes long).
    static func prefix(_ text: String, bytes: Int) -> String {
        var count = 0
        var end = text.startIndex
        for character in text {
            count += character.utf8.count
            guard count <= bytes else { break }
            end = text.index(after: end)
        }
        return String(text[..<end])
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
