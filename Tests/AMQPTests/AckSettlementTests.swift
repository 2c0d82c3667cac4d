@testable import AMQP
import Testing

/// How a channel's queued acks go out, without a broker: coalesced into one `multiple`
/// ack when they settle the oldest deliveries, and never onto a channel instance other
/// than the one that delivered them (delivery tags restart at 1 when a channel reopens,
/// so an old tag sent there would settle a different message).
@Suite struct AckSettlementTests {
    /// An open channel at `epoch` that has delivered `tags`.
    private func channel(epoch: UInt64 = 1, delivered tags: ClosedRange<UInt64>) -> ChannelState {
        let channel = ChannelState(id: 2, confirms: false)
        channel.reopened(epoch: epoch)
        for tag in tags { channel.unsettled.append(tag) }
        return channel
    }

    @Test func inOrderAcksGoOutAsOneMultipleAck() {
        let channel = channel(delivered: 1...5)
        for tag in [3, 1, 2] as [UInt64] { #expect(channel.queueAck(tag, epoch: 1)) }
        #expect(channel.takeQueuedAcks() == .multiple(upTo: 3))
        #expect(channel.unsettled.count == 2)
        #expect(channel.takeQueuedAcks() == .none, "sent once")
    }

    @Test func acksWithAGapGoOutOneByOne() {
        let channel = channel(delivered: 1...5)
        for tag in [4, 2] as [UInt64] { #expect(channel.queueAck(tag, epoch: 1)) }
        #expect(channel.takeQueuedAcks() == .single([2, 4]), "1 is still unsettled: a multiple ack up to 4 would settle it too")
        #expect(channel.unsettled.hasPrefix([1, 3, 5]))
    }

    @Test func aSingleAckIsNotSentAsMultiple() {
        let channel = channel(delivered: 1...3)
        #expect(channel.queueAck(1, epoch: 1))
        #expect(channel.takeQueuedAcks() == .single([1]))
    }

    @Test func anAckOfAnEarlierEpochIsRefused() {
        let channel = channel(epoch: 2, delivered: 1...3)
        #expect(!channel.queueAck(1, epoch: 1))
        #expect(channel.takeQueuedAcks() == .none)
    }

    /// Acks queued, then the broker closes the channel and Warren reopens it within the
    /// same batch of commands, and the new channel delivers tags 1 and 2 again.
    @Test func acksQueuedBeforeAReopenNeverReachTheNewChannel() {
        let channel = channel(epoch: 1, delivered: 1...2)
        #expect(channel.queueAck(1, epoch: 1))
        #expect(channel.queueAck(2, epoch: 1))
        channel.open = false
        #expect(!channel.hasQueuedAcks, "dropped when the channel closed, before it reopens")
        channel.reopened(epoch: 2)
        channel.unsettled.append(1)
        channel.unsettled.append(2)
        #expect(channel.takeQueuedAcks() == .none)
        #expect(channel.unsettled.count == 2, "the new deliveries are still unsettled")
    }

    @Test func aLostConnectionDropsQueuedAcks() {
        let channel = channel(delivered: 1...2)
        #expect(channel.queueAck(1, epoch: 1))
        channel.open = false
        #expect(channel.takeQueuedAcks() == .none)
        #expect(!channel.queueAck(2, epoch: 1), "a closed channel accepts no acks")
    }
}
