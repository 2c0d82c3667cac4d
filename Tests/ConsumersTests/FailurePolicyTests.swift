@testable import AMQP
@testable import Consumers
import Foundation
import Postgres
import Testing
import WarrenCore

@Suite struct FailurePolicyTests {
    let policy = FailurePolicy(
        consumer: "users.projection", retryQueues: ["q.retry.1", "q.retry.2", "q.retry.3"], deadLetterQueue: "q.dlq", maxAttempts: 5)

    // MARK: Counting attempts from untrusted headers

    @Test func aFirstDeliveryIsAttemptOne() throws {
        #expect(try FailurePolicy.attempt(nil).get() == 1)
        #expect(try FailurePolicy.attempt(["other": 3]).get() == 1)
    }

    @Test func theHeaderCountsFailedAttemptsWhateverIntegerWidthTheSenderChose() throws {
        #expect(try FailurePolicy.attempt([WarrenHeader.attempts: .int64(2)]).get() == 3)
        #expect(try FailurePolicy.attempt([WarrenHeader.attempts: .uint8(0)]).get() == 1)
        #expect(try FailurePolicy.attempt([WarrenHeader.attempts: .int32(4)]).get() == 5)
        #expect(try FailurePolicy.attempt([WarrenHeader.attempts: .int64(FailurePolicy.attemptsLimit)]).get() == 1_000_001)
    }

    /// Any upstream publisher can set the header: out-of-range values are refused by name,
    /// never added to (Int64.max + 1 trapped and killed the consumer).
    @Test(arguments: [
        AMQPFieldValue.int64(.max), .int64(-5), .int64(-1), .int64(FailurePolicy.attemptsLimit + 1), .uint64(.max),
        .string("3"), .double(2), .bool(true), .table([:]),
    ])
    func anOutOfRangeOrNonIntegerHeaderIsAPermanentFailureNamingTheHeader(_ value: AMQPFieldValue) {
        guard case .failure(let failure) = FailurePolicy.attempt([WarrenHeader.attempts: value]) else {
            Issue.record("accepted \(value)")
            return
        }
        #expect(failure.kind == .permanent)
        #expect(failure.type == "header.x-warren-attempts")
        #expect(failure.message.contains("x-warren-attempts is"))
    }

    @Test func theRefusalMessageShowsTheValueReceived() throws {
        let failure = try #require(FailurePolicy.attempt([WarrenHeader.attempts: .int64(.max)]).failure)
        #expect(failure.message == "x-warren-attempts is 9223372036854775807: must be an integer from 0 to 1000000")
        let unsigned = try #require(FailurePolicy.attempt([WarrenHeader.attempts: .uint64(.max)]).failure)
        #expect(unsigned.message.hasPrefix("x-warren-attempts is 18446744073709551615:"))
    }

    @Test func deliveriesWithTooDeepHeadersOrBadAttemptsAreRefusedBeforeDecoding() throws {
        var delivery = Self.delivery(headers: [WarrenHeader.attempts: 2])
        #expect(try FailurePolicy.attempt(of: delivery).get() == 3)
        delivery.headersTooDeep = true
        #expect(FailurePolicy.attempt(of: delivery).failure?.type == "header.depth")
        #expect(FailurePolicy.attempt(of: Self.delivery(headers: [WarrenHeader.attempts: .int64(-5)])).failure?.type == "header.x-warren-attempts")
    }

    // MARK: Where a failure goes

    @Test func transientFailuresWalkTheDelayTiersThenStayOnTheLast() {
        let transient = HandlerFailure.transient("provider.down", "503")
        #expect(policy.destination(of: transient, attempt: 1) == .retry(queue: "q.retry.1", tier: 0))
        #expect(policy.destination(of: transient, attempt: 2) == .retry(queue: "q.retry.2", tier: 1))
        #expect(policy.destination(of: transient, attempt: 3) == .retry(queue: "q.retry.3", tier: 2))
        #expect(policy.destination(of: transient, attempt: 4) == .retry(queue: "q.retry.3", tier: 2))
    }

    @Test func outOfAttemptsGoesToTheDeadLetterQueue() {
        let transient = HandlerFailure.transient("provider.down", "503")
        #expect(policy.destination(of: transient, attempt: 5) == .deadLetter(queue: "q.dlq"))
        #expect(policy.destination(of: transient, attempt: 1_000_001) == .deadLetter(queue: "q.dlq"))
    }

    @Test func permanentFailuresAreDeadLetteredAtOnce() {
        #expect(policy.destination(of: .permanent("payment.conflict", "x"), attempt: 1) == .deadLetter(queue: "q.dlq"))
    }

    @Test func withoutDelayTiersATransientFailureIsDeadLettered() {
        var policy = policy
        policy.retryQueues = []
        #expect(policy.destination(of: .transient("t", "x"), attempt: 1) == .deadLetter(queue: "q.dlq"))
    }

    @Test func anAttemptBelowOneNeverIndexesBeforeTheFirstTier() {
        #expect(policy.destination(of: .transient("t", "x"), attempt: 0) == .retry(queue: "q.retry.1", tier: 0))
        #expect(policy.destination(of: .transient("t", "x"), attempt: -7) == .retry(queue: "q.retry.1", tier: 0))
    }

    // MARK: Failure headers

    @Test func failureHeadersRecordTheEpisodeAndKeepTheFirstFailureAndOrigin() throws {
        let first = Date(timeIntervalSince1970: 1_700_000_000)
        let delivery = Self.delivery(headers: ["traceparent": "00-abc", publishSequenceHeader: 9])
        let once = policy.headers(for: delivery, attempt: 1, failure: .transient("t", "boom"), at: first)
        #expect(once[WarrenHeader.attempts] == .int64(1))
        #expect(once[WarrenHeader.consumer] == "users.projection")
        #expect(once[WarrenHeader.errorType] == "t")
        #expect(once[WarrenHeader.error] == "boom")
        #expect(once[WarrenHeader.firstFailedAt] == .string(RFC3339.format(first)))
        #expect(once[WarrenHeader.lastFailedAt] == .string(RFC3339.format(first)))
        #expect(once[WarrenHeader.originalExchange] == "events")
        #expect(once[WarrenHeader.originalRoutingKey] == "user.created")
        #expect(once["traceparent"] == "00-abc")
        #expect(once[publishSequenceHeader] == nil)

        // Back from a delay queue: exchange-less, routed by queue name.
        var retried = Self.delivery(headers: once)
        retried.exchange = ""
        retried.routingKey = "users.projection"
        let later = first.addingTimeInterval(60)
        let twice = policy.headers(for: retried, attempt: 2, failure: .permanent("p", String(repeating: "x", count: 5000)), at: later)
        #expect(twice[WarrenHeader.attempts] == .int64(2))
        #expect(twice[WarrenHeader.firstFailedAt] == .string(RFC3339.format(first)))
        #expect(twice[WarrenHeader.lastFailedAt] == .string(RFC3339.format(later)))
        #expect(twice[WarrenHeader.originalExchange] == "events")
        #expect(twice[WarrenHeader.originalRoutingKey] == "user.created")
        #expect(twice[WarrenHeader.error]?.stringValue?.count == 1000)
    }

    // MARK: Classifying errors

    @Test func dataAndIntegrityErrorsArePermanentOtherDatabaseErrorsTransient() {
        let unique = PostgresError(code: .queryFailed, message: "duplicate key", sqlState: "23505")
        #expect(FailurePolicy.classify(unique).kind == .permanent)
        #expect(FailurePolicy.classify(unique).type == "postgres.23505")
        #expect(FailurePolicy.classify(PostgresError(code: .queryFailed, message: "bad number", sqlState: "22003")).kind == .permanent)
        #expect(FailurePolicy.classify(PostgresError(code: .queryFailed, message: "deadlock", sqlState: "40P01")).kind == .transient)
        #expect(FailurePolicy.classify(HandlerFailure.permanent("x", "y")).type == "x")
        struct Other: Error {}
        #expect(FailurePolicy.classify(Other()).type == "handler.error")
        #expect(FailurePolicy.classify(Other()).kind == .transient)
    }

    static func delivery(headers: AMQPTable) -> AMQPDelivery {
        AMQPDelivery(
            body: [], properties: AMQPProperties(headers: headers), deliveryTag: 1, redelivered: false, exchange: "events",
            routingKey: "user.created", consumerTag: "c", messageCount: nil, channelID: 2, generation: 1)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { failure } else { nil }
    }
}

@Suite struct StrippedPropertiesTests {
    let policy = FailurePolicy(consumer: "users.projection", retryQueues: ["q.retry.1"], deadLetterQueue: "q.dlq", maxAttempts: 5)

    /// What cannot be sent on as it came is always sendable once stripped.
    @Test func strippedPropertiesAreAlwaysEncodableAndSayWhy() throws {
        let long = String(repeating: "t", count: 300)
        var delivery = FailurePolicyTests.delivery(headers: [
            "big": .string(String(repeating: "h", count: 200_000)), WarrenHeader.originalRoutingKey: "user.created",
            WarrenHeader.replayed: .int64(2),
        ])
        delivery.properties.type = long
        delivery.properties.messageID = "m-1"
        delivery.properties.userID = "someone"
        #expect(throws: AMQPError.self) { try WireLimits.checkPublish(exchange: "", routingKey: "q.dlq", properties: delivery.properties) }
        let stripped = policy.strippedProperties(
            for: delivery, attempt: 2, failure: .permanent("event.malformed", "not JSON"), reason: "too big", at: Date())
        try WireLimits.checkPublish(exchange: "", routingKey: "q.dlq", properties: stripped)
        #expect(stripped.headers?["big"] == nil)
        #expect(stripped.headers?[WarrenHeader.headersDropped] == "too big")
        #expect(stripped.headers?[WarrenHeader.errorType] == "event.malformed")
        #expect(stripped.headers?[WarrenHeader.attempts] == .int64(2))
        #expect(stripped.headers?[WarrenHeader.originalRoutingKey] == "user.created")
        #expect(stripped.headers?[WarrenHeader.replayed] == .int64(2), "the replay count decides whether an email may be resent")
        #expect(stripped.type == nil && stripped.messageID == "m-1" && stripped.userID == nil)
    }

    @Test func theErrorHeaderIsCutByBytesAtACharacterBoundary() {
        #expect(FailurePolicy.prefix("héllo", bytes: 2) == "h")
        #expect(FailurePolicy.prefix("héllo", bytes: 3) == "hé")
        let zalgo = "a" + String(repeating: "\u{0301}", count: 5000)  // one character of 10,001 bytes
        #expect(FailurePolicy.prefix(zalgo + "b", bytes: 1000) == "")
        #expect(FailurePolicy.prefix("short", bytes: 1000) == "short")
    }
}
