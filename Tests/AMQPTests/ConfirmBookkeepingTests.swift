@testable import AMQP
import Testing

/// The confirm bookkeeping of a channel, without a broker: acks may come one by one,
/// out of order, or as `multiple` covering everything up to a tag.
@Suite struct ConfirmBookkeepingTests {
    /// A confirm channel with `publishes` unconfirmed publishes, sequence numbers 1...n.
    private func makeChannel(publishes: Int) -> ChannelState {
        let channel = ChannelState(id: 2, confirms: true)
        for _ in 0..<publishes {
            channel.sent(PendingConfirm(deadline: .now + .seconds(5), timeout: .seconds(5), done: { _ in }))
        }
        return channel
    }

    @Test func multipleSettlesEverythingUpToTheTagOnce() {
        let channel = makeChannel(publishes: 10)
        #expect(channel.settle(upTo: 4, multiple: false).count == 1)
        #expect(channel.settle(upTo: 6, multiple: true).count == 5)  // 1,2,3,5,6
        #expect(channel.unconfirmed.lowest == 7)
        #expect(channel.settle(upTo: 6, multiple: true).isEmpty)
        #expect(channel.settle(upTo: 10, multiple: true).count == 4)
        #expect(channel.unconfirmed.isEmpty)
    }

    @Test func outOfOrderSingleAcks() {
        let channel = makeChannel(publishes: 5)
        for tag in [5, 3, 1, 4, 2] as [UInt64] { #expect(channel.settle(upTo: tag, multiple: false).count == 1) }
        #expect(channel.unconfirmed.isEmpty)
        #expect(channel.unconfirmed.lowest == 6)
    }

    @Test func unknownTagsSettleNothing() {
        let channel = makeChannel(publishes: 3)
        #expect(channel.settle(upTo: 99, multiple: false).isEmpty)
        #expect(channel.unconfirmed.count == 3)
    }

    @Test func expiredPublishesLeaveFromAnywhere() {
        let channel = ChannelState(id: 2, confirms: true)
        let now = ContinuousClock.now
        for seconds in [5, -1, 5, -1, -1] {
            channel.sent(PendingConfirm(deadline: now + .seconds(seconds), timeout: .seconds(1), done: { _ in }))
        }
        #expect(channel.unconfirmed.removeExpired(at: now).count == 3)
        #expect(channel.unconfirmed.count == 2)
        #expect(channel.unconfirmed[2] == nil && channel.unconfirmed[3] != nil)
        #expect(channel.settle(upTo: 5, multiple: true).count == 2)
        #expect(channel.unconfirmed.isEmpty)
        channel.sent(PendingConfirm(deadline: now, timeout: .seconds(1), done: { _ in }))
        #expect(channel.unconfirmed.lowest == 6 && channel.unconfirmed[6] != nil)
    }

    /// Long runs with a window of outstanding publishes keep the storage bounded and
    /// the numbering right.
    @Test func slidingWindowOverManyPublishes() {
        let channel = ChannelState(id: 2, confirms: true)
        var settled = 0
        for _ in 0..<20_000 {
            channel.sent(PendingConfirm(deadline: .now + .seconds(5), timeout: .seconds(5), done: { _ in }))
            if channel.unconfirmed.count == 256 {
                // Every other one singly, out of order, then the rest as one multiple ack.
                let top = channel.nextSequence - 1
                settled += channel.settle(upTo: top - 1, multiple: false).count + channel.settle(upTo: top - 3, multiple: false).count
                settled += channel.settle(upTo: top - 100, multiple: true).count
            }
        }
        settled += channel.settle(upTo: channel.nextSequence - 1, multiple: true).count
        #expect(settled == 20_000)
        #expect(channel.unconfirmed.isEmpty)
    }

    @Test func reopeningRestartsSequenceNumbers() {
        let channel = makeChannel(publishes: 3)
        #expect(channel.takeAllUnconfirmed().count == 3)
        channel.reopened(epoch: 7)
        #expect(channel.nextSequence == 1)
        #expect(channel.epoch == 7)
        #expect(channel.open)
    }
}


/// Which queued acks may be merged into one `multiple` ack.
@Suite struct UnsettledTagsTests {
    @Test func onlyTheOldestTagsFormAPrefix() {
        var tags = UnsettledTags()
        for tag in 1...6 as ClosedRange<UInt64> { tags.append(tag) }
        #expect(tags.hasPrefix([1, 2, 3]))
        #expect(!tags.hasPrefix([2, 3]))
        #expect(!tags.hasPrefix([1, 3]))
        tags.removePrefix(3)
        #expect(tags.hasPrefix([4]))
        tags.remove(5)
        #expect(!tags.hasPrefix([4, 5]))
        #expect(tags.hasPrefix([4, 6]))
        tags.removeAll(upTo: 6)
        #expect(tags.count == 0)
    }

    @Test func removingAnUnknownTagChangesNothing() {
        var tags = UnsettledTags()
        tags.append(10)
        tags.remove(3)
        #expect(tags.count == 1)
    }
}
