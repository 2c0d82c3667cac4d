import Testing
@testable import Webhooks

@Suite struct DispatchSlotsTests {
    static let limits = DispatchSlots.Limits(perSubscription: 2, perFailingSubscription: 1, prefetch: 4, total: 5)

    static func delivery(_ subscription: String, _ event: Int, failing: Bool = false) -> WebhookDeliveries.Claimed {
        .init(
            subscriptionID: subscription, eventID: "e\(event)", webhookID: "msg_\(event)", attempt: 1, payload: "{}", traceparent: nil,
            url: "https://example.com", secrets: ["whsec_x"], failing: failing)
    }

    @Test func sendsAtMostTheConcurrencyOfEachSubscriptionAndTheTotal() {
        var slots = DispatchSlots(limits: Self.limits)
        let claimed = (0..<4).map { Self.delivery("a", $0) } + (0..<4).map { Self.delivery("b", 10 + $0) } + (0..<4).map { Self.delivery("c", 20 + $0) }
        slots.leased(claimed, asked: [:])
        let sending = slots.nextToSend()
        #expect(sending.count == 5, "the total caps it")
        #expect(sending.filter { $0.subscriptionID == "a" }.count <= 2)
        #expect(Set(sending.map(\.subscriptionID)) == ["a", "b", "c"], "subscriptions take turns")
        #expect(slots.nextToSend().isEmpty)
        // One request of a ends: the next one of a goes, nobody else's.
        slots.sent(sending.first { $0.subscriptionID == "a" }!)
        let next = slots.nextToSend()
        #expect(next.count == 1)
    }

    @Test func aHangingSubscriptionNeverTakesAnotherOnesTurn() {
        var slots = DispatchSlots(limits: .init(perSubscription: 2, perFailingSubscription: 1, prefetch: 4, total: 100))
        slots.leased((0..<4).map { Self.delivery("slow", $0) } + (0..<4).map { Self.delivery("fast", 10 + $0) }, asked: [:])
        let first = slots.nextToSend()
        #expect(first.filter { $0.subscriptionID == "slow" }.count == 2)
        // fast finishes and is recorded twice over; slow never answers.
        var sentFast = 0
        var batch = first.filter { $0.subscriptionID == "fast" }
        while !batch.isEmpty {
            for delivery in batch {
                slots.sent(delivery)
                slots.recorded(1)
                sentFast += 1
            }
            batch = slots.nextToSend()
            #expect(batch.allSatisfy { $0.subscriptionID == "fast" })
        }
        #expect(sentFast == 4)
    }

    @Test func aFailingSubscriptionHoldsAndSendsOne() {
        var slots = DispatchSlots(limits: Self.limits)
        #expect(slots.limit(failing: true) == 1 && slots.limit(failing: false) == 4)
        slots.leased([Self.delivery("dead", 1, failing: true)], asked: [:])
        #expect(slots.nextToSend().count == 1)
        #expect(slots.holding == ["dead": 1])
        #expect(!slots.wantsClaim, "it got all of its room but holds it all")
    }

    @Test func claimsAgainOnlyForSubscriptionsThatFilledTheirRoomAndRanLow() {
        var slots = DispatchSlots(limits: Self.limits)
        // a filled its room of 4 (more may be due); b got 1 of 4 (nothing more due now).
        slots.leased((0..<4).map { Self.delivery("a", $0) } + [Self.delivery("b", 9)], asked: [:])
        #expect(!slots.wantsClaim)
        let sending = slots.nextToSend()
        for delivery in sending where delivery.subscriptionID == "a" {
            slots.sent(delivery)
            slots.recorded(1)
        }
        #expect(slots.holding["a"] == 2)
        #expect(slots.wantsClaim, "a is down to half its room")
        // The next claim finds nothing more for a: no claim until a notification or the poll.
        slots.leased([], asked: slots.holding)
        #expect(!slots.wantsClaim)
    }

    @Test func shutdownGivesBackWhatWasNeverSent() {
        var slots = DispatchSlots(limits: Self.limits)
        slots.leased((0..<4).map { Self.delivery("a", $0) }, asked: [:])
        let sending = slots.nextToSend()
        let dropped = slots.dropQueued()
        #expect(sending.count == 2 && dropped.count == 2)
        #expect(slots.totalHeld == 2, "the two in flight stay held until recorded")
        for delivery in sending { slots.sent(delivery) }
        #expect(slots.holding.isEmpty && slots.totalHeld == 2, "finished: the subscription's room is free, the attempts count in all until recorded")
        #expect(slots.handoffPlan(["a", "a", "a", "a", "a"], maximumHeld: 6) == [true, true, true, true, false])
        slots.recorded(2)
        #expect(slots.totalHeld == 0 && slots.totalInFlight == 0)
    }

    @Test func theFanOutLeasesOnlyWhatEachSubscriptionHasRoomForAndNothingOfAFailingOne() {
        var slots = DispatchSlots(limits: Self.limits)
        // a holds 3 of its 4; dead is failing; b holds nothing.
        slots.leased((0..<3).map { Self.delivery("a", $0) } + [Self.delivery("dead", 5, failing: true)], asked: [:])
        var plan = slots.handoffPlan(["a", "a", "b", "dead", "b", "b", "b", "b", "c"], maximumHeld: 100)
        #expect(plan == [true, false, true, false, true, true, true, false, true])
        // The cap on everything held: 4 held, room for 2 more in all.
        var capped = DispatchSlots(limits: Self.limits)
        capped.leased((0..<4).map { Self.delivery("a", $0) }, asked: [:])
        plan = capped.handoffPlan(["b", "c", "b", "d"], maximumHeld: 6)
        #expect(plan == [true, true, false, false])
    }

    @Test func aSubscriptionWithDeliveriesLeftDueGetsNoneHandedOverUntilAClaimTookThem() {
        var slots = DispatchSlots(limits: Self.limits)
        let early = slots.claimStart
        #expect(slots.handoffPlan(["b", "b", "b", "b", "b"], maximumHeld: 100) == [true, true, true, true, false])
        slots.handedOff((0..<4).map { Self.delivery("b", $0) })
        var sending = slots.nextToSend()
        while !sending.isEmpty {
            for delivery in sending { slots.sent(delivery) }
            sending = slots.nextToSend()
        }
        #expect(slots.holding.isEmpty)
        // Room again, but the fifth is due in the database: newer ones must not overtake it.
        #expect(slots.handoffPlan(["b"], maximumHeld: 100) == [false])
        #expect(slots.wantsClaim, "claim what was left due")
        // A claim begun before the fifth was left due proves nothing about it...
        slots.leased([], asked: early.holding, mark: early.mark, complete: true)
        #expect(slots.handoffPlan(["b"], maximumHeld: 100) == [false])
        // ...one begun after, that came back with room to spare, took it.
        let start = slots.claimStart
        slots.leased([Self.delivery("b", 4), Self.delivery("b", 5)], asked: start.holding, mark: start.mark, complete: true)
        #expect(slots.handoffPlan(["b"], maximumHeld: 100) == [true])
        #expect(!slots.wantsClaim)
        // A claim cut short by the room in all proves nothing either.
        #expect(slots.handoffPlan(["c"], maximumHeld: 0) == [false])
        let cut = slots.claimStart
        slots.leased([], asked: cut.holding, mark: cut.mark, complete: false)
        #expect(slots.handoffPlan(["c"], maximumHeld: 100) == [false])
    }

    @Test func handedOffDeliveriesAreHeldAndSentButDoNotMakeASubscriptionBusy() {
        var slots = DispatchSlots(limits: Self.limits)
        slots.handedOff((0..<4).map { Self.delivery("a", $0) })
        #expect(slots.holding == ["a": 4])
        let first = slots.nextToSend()
        #expect(first.count == 2, "its concurrency still caps it")
        // Filling its room by hand-off says nothing about more being due: no claim for it.
        #expect(!slots.wantsClaim)
        for delivery in first { slots.sent(delivery) }
        #expect(!slots.wantsClaim)
        #expect(slots.handoffPlan(["a", "a", "a"], maximumHeld: 100) == [true, true, false])
    }
}
