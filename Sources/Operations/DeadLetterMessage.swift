import AMQP
import Foundation
import WarrenCore

/// What ops need to know about one dead-lettered message, read from its properties and
/// Warren's `x-warren-*` headers (see `WarrenHeader`).
public struct DeadLetterMessage: Sendable, Encodable {
    public var id: String
    public var type: String?
    public var consumer: String?
    public var errorType: String?
    public var error: String?
    public var attempts: Int?
    public var firstFailedAt: Date?
    public var lastFailedAt: Date?
    public var originalExchange: String?
    public var originalRoutingKey: String?
    public var replayed: Int
    /// When it was dead-lettered (last failure), else when it was published.
    public var deadLetteredAt: Date?

    public init(_ delivery: AMQPDelivery) {
        let headers = delivery.properties.headers ?? [:]
        func text(_ name: String) -> String? { headers[name]?.stringValue }
        id = delivery.properties.messageID ?? "(no message id)"
        type = delivery.properties.type ?? text(WarrenHeader.originalRoutingKey)
        consumer = text(WarrenHeader.consumer)
        errorType = text(WarrenHeader.errorType)
        error = text(WarrenHeader.error)
        attempts = headers[WarrenHeader.attempts]?.intValue.map(Int.init)
        firstFailedAt = text(WarrenHeader.firstFailedAt).flatMap(RFC3339.parse)
        lastFailedAt = text(WarrenHeader.lastFailedAt).flatMap(RFC3339.parse)
        originalExchange = text(WarrenHeader.originalExchange)
        originalRoutingKey = text(WarrenHeader.originalRoutingKey)
        replayed = Int(headers[WarrenHeader.replayed]?.intValue ?? 0)
        deadLetteredAt = lastFailedAt ?? delivery.properties.timestamp.map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    public func age(now: Date = Date()) -> TimeInterval? {
        deadLetteredAt.map { max(0, now.timeIntervalSince($0)) }
    }

    enum CodingKeys: String, CodingKey {
        case id, type, consumer, errorType = "error_type", error, attempts, firstFailedAt = "first_failed_at"
        case lastFailedAt = "last_failed_at", originalExchange = "original_exchange"
        case originalRoutingKey = "original_routing_key", replayed, ageSeconds = "age_seconds"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(type, forKey: .type)
        try container.encode(consumer, forKey: .consumer)
        try container.encode(errorType, forKey: .errorType)
        try container.encode(error, forKey: .error)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(firstFailedAt.map(RFC3339.format), forKey: .firstFailedAt)
        try container.encode(lastFailedAt.map(RFC3339.format), forKey: .lastFailedAt)
        try container.encode(originalExchange, forKey: .originalExchange)
        try container.encode(originalRoutingKey, forKey: .originalRoutingKey)
        try container.encode(replayed, forKey: .replayed)
        try container.encode(age().map { Int($0) }, forKey: .ageSeconds)
    }
}

/// Which dead-lettered messages a replay or purge touches. Every criterion given must hold;
/// `all` alone selects everything. An empty selector selects nothing (the CLI refuses it).
public struct DeadLetterSelector: Sendable, Encodable {
    public var ids: [String] = []
    public var type: String?
    /// A substring of `x-warren-error`.
    public var errorContains: String?
    public var olderThan: Duration?
    public var newerThan: Duration?
    public var limit: Int?
    public var all = false

    public init() {}

    public var isEmpty: Bool { !all && ids.isEmpty && type == nil && errorContains == nil && olderThan == nil && newerThan == nil }

    public func matches(_ message: DeadLetterMessage, now: Date = Date()) -> Bool {
        guard !isEmpty else { return false }
        if !ids.isEmpty && !ids.contains(message.id) { return false }
        if let type, message.type != type { return false }
        if let errorContains, !(message.error ?? "").contains(errorContains) { return false }
        if let olderThan {
            guard let age = message.age(now: now), age >= olderThan.seconds else { return false }
        }
        if let newerThan {
            guard let age = message.age(now: now), age < newerThan.seconds else { return false }
        }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case ids, type, error, olderThan = "older_than", newerThan = "newer_than", limit, all
    }

    /// As recorded in the audit table: only the criteria that were given.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if !ids.isEmpty { try container.encode(ids, forKey: .ids) }
        try container.encodeIfPresent(type, forKey: .type)
        try container.encodeIfPresent(errorContains, forKey: .error)
        try container.encodeIfPresent(olderThan.map(AgeText.format), forKey: .olderThan)
        try container.encodeIfPresent(newerThan.map(AgeText.format), forKey: .newerThan)
        try container.encodeIfPresent(limit, forKey: .limit)
        if all { try container.encode(true, forKey: .all) }
    }
}

/// Ages as ops write them: `30s`, `10m`, `2h`, `3d`.
public enum AgeText {
    private static let units: [(suffix: String, seconds: Int64)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]

    public static func parse(_ text: String) -> Duration? {
        guard let unit = units.first(where: { text.hasSuffix($0.suffix) }) else { return nil }
        let number = text.dropLast(unit.suffix.count)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(number),
              case let (seconds, overflow) = value.multipliedReportingOverflow(by: unit.seconds), !overflow
        else { return nil }
        return .seconds(seconds)
    }

    public static func format(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        for unit in units where seconds != 0 && seconds % unit.seconds == 0 {
            return "\(seconds / unit.seconds)\(unit.suffix)"
        }
        return "\(seconds)s"
    }
}

extension Duration {
    var seconds: TimeInterval { self / .seconds(1) }
}
