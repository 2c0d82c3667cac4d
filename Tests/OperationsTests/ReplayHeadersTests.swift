import AMQP
import Foundation
@testable import Operations
import Testing
import WarrenCore

@Suite struct ReplayHeadersTests {
    @Test func theReplayCountGoesUpByOne() {
        #expect(DeadLetterQueues.replayCount(after: nil) == 1)
        #expect(DeadLetterQueues.replayCount(after: .int64(1)) == 2)
        #expect(DeadLetterQueues.replayCount(after: .uint8(41)) == 42)
    }

    /// The header came off the wire: Int64.max + 1 trapped and killed `dlq replay`.
    @Test func aHostileReplayCountNeitherTrapsNorFailsTheReplay() {
        #expect(DeadLetterQueues.replayCount(after: .int64(.max)) == .max)
        #expect(DeadLetterQueues.replayCount(after: .uint64(.max)) == 1)
        #expect(DeadLetterQueues.replayCount(after: .int64(-5)) == 1)
        #expect(DeadLetterQueues.replayCount(after: .string("many")) == 1)
    }

    @Test func aReplayedMessageLosesItsFailureEpisodeAndKeepsItsHistory() {
        let headers: AMQPTable = [
            WarrenHeader.attempts: 5, WarrenHeader.consumer: "c", WarrenHeader.errorType: "t", WarrenHeader.error: "e",
            WarrenHeader.lastFailedAt: "2026-01-01T00:00:00Z", WarrenHeader.firstFailedAt: "2025-12-31T00:00:00Z",
            WarrenHeader.originalExchange: "events", WarrenHeader.originalRoutingKey: "user.created",
            WarrenHeader.replayed: .int64(.max), "x-delivery-count": 3, "traceparent": "00-x",
        ]
        let replayed = DeadLetterQueues.replayed(AMQPProperties(headers: headers, messageID: "m"), at: Date(timeIntervalSince1970: 0))
        let out = replayed.headers ?? [:]
        for gone in [WarrenHeader.attempts, WarrenHeader.consumer, WarrenHeader.errorType, WarrenHeader.error, WarrenHeader.lastFailedAt, "x-delivery-count"] {
            #expect(out[gone] == nil, "\(gone) kept")
        }
        #expect(out[WarrenHeader.firstFailedAt] == "2025-12-31T00:00:00Z")
        #expect(out[WarrenHeader.originalRoutingKey] == "user.created")
        #expect(out["traceparent"] == "00-x")
        #expect(out[WarrenHeader.replayed] == .int64(.max))
        #expect(out[WarrenHeader.replayedAt] == .string(RFC3339.format(Date(timeIntervalSince1970: 0))))
        #expect(replayed.messageID == "m")
    }
}
