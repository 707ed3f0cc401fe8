import NIOCore

/// How long an admitted request waits for a slot when every car and central endpoint in its zone
/// that serves its model is busy, instead of failing at once.
///
/// A stream whose car was lost, or a request whose first attempt failed, was admitted when its
/// zone had room; at full load another stream's end frees a slot within seconds, so ending it with
/// an error because none was free at that instant loses it for nothing (helper-56: 20 of 200 streams
/// lost with two cars killed at full capacity). A first attempt is not held: past capacity, new
/// requests are shed with 503 `server_overloaded` (admission), and waiting would queue them without
/// bound. Nor is a hedge (it races a slow first token, and only with room) or a departure's
/// continuation (the departing car goes on serving meanwhile).
///
/// The wait asks again every ``interval``, up to ``limit`` from the first refusal; a candidate
/// found ends it, and the next wait (another migration) starts its own clock. A zone with nothing
/// that serves the model (busy or not) is not waited on.
struct CapacityWait {
    /// The longest a request waits for one attempt; zero never waits.
    let limit: TimeAmount
    /// How often the candidates are asked again while waiting.
    static let interval: TimeAmount = .milliseconds(100)
    /// When the current wait began.
    private(set) var since: NIODeadline?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    /// No candidate was found for an attempt opened for `reason`: the delay before asking again,
    /// or nil to give the attempt up.
    ///
    /// - Parameters:
    ///   - zoneBusy: whether the zone has capacity for the model that is only busy (slots, back-off, a
    ///     central endpoint's bound).
    mutating func retryDelay(reason: DispatchStateMachine.OpenReason, zoneBusy: Bool, now: NIODeadline) -> TimeAmount? {
        switch reason {
        case .initial, .hedge, .departure: return nil
        case .retry, .failover, .restart: break
        }
        guard zoneBusy, self.limit > .zero else {
            self.since = nil
            return nil
        }
        let since = self.since ?? now
        let left = since + self.limit - now
        guard left > .zero else {
            self.since = nil
            return nil
        }
        self.since = since
        return min(Self.interval, left)
    }

    /// A candidate was found: the wait, if any, is over.
    mutating func found() {
        self.since = nil
    }
}
