/// Whether Redis is in an outage, and whether a command may be sent now: the pure
/// decision behind the client's fail-fast (unit tested without a server).
///
/// While up, every command is sent. The first outage error (refused, lost, timeout)
/// turns it down: from then on one command per `probeInterval` is let through as a
/// probe and the others fail at once, so no caller waits for a connect timeout during
/// an outage. The first success turns it up again.
public struct RedisAvailability: Sendable {
    public enum State: Sendable, Equatable {
        case up
        case down(since: ContinuousClock.Instant, nextProbe: ContinuousClock.Instant)
    }

    public enum Transition: Sendable, Equatable {
        case wentDown
        case recovered(outage: Duration)
    }

    public private(set) var state: State = .up
    public let probeInterval: Duration
    /// When the last outage ended: a failure of a command sent before it is old news.
    private var recoveredAt: ContinuousClock.Instant?

    public init(probeInterval: Duration) {
        self.probeInterval = probeInterval
    }

    public var isUp: Bool { state == .up }

    /// True if a command may be sent at `now`; a probe moves the next one `probeInterval` on.
    public mutating func maySend(at now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .up:
            return true
        case .down(let since, let nextProbe):
            guard now >= nextProbe else { return false }
            state = .down(since: since, nextProbe: now + probeInterval)
            return true
        }
    }

    /// `sentAt`: when the command was sent. A success of one sent before the outage began
    /// (a late reply) says nothing about now.
    public mutating func succeeded(at now: ContinuousClock.Instant, sentAt: ContinuousClock.Instant? = nil) -> Transition? {
        guard case .down(let since, _) = state, (sentAt ?? now) >= since else { return nil }
        state = .up
        recoveredAt = now
        return .recovered(outage: now - since)
    }

    /// `sentAt`: when the command was sent. A failure of one sent before the last recovery
    /// (a timeout that began during the outage) does not begin a new outage.
    public mutating func failed(at now: ContinuousClock.Instant, sentAt: ContinuousClock.Instant? = nil) -> Transition? {
        switch state {
        case .up:
            if let recoveredAt, let sentAt, sentAt < recoveredAt { return nil }
            state = .down(since: now, nextProbe: now + probeInterval)
            return .wentDown
        case .down(let since, let nextProbe):
            state = .down(since: since, nextProbe: max(nextProbe, now + probeInterval))
            return nil
        }
    }
}
