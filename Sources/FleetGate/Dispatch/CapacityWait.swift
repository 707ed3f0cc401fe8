import NIOCore

/// How long a stream whose upstream was lost after tokens reached its client waits for a slot when
/// every car and central endpoint in its zone that serves its model is busy, instead of failing at
/// once.
///
/// Such a stream was admitted when its zone had room; at full load another stream's end frees a
/// slot within seconds, so ending it with an error because none was free at that instant loses it
/// for nothing (helper-56: 20 of 200 streams lost with two cars killed at full capacity), and its
/// client cannot simply send it again. A departure's continuation waits the same way while its car
/// streams on: the stream moves when a slot frees, before the car goes (session 41: it was asked
/// once, and a car that then left lost its streams unplanned; a departure that gives up leaves the
/// stream on its car, and no later departure of the request waits). Nothing else waits: a first
/// attempt, a retry before the first token and a `stream: false` restart get 503 `server_overloaded`
/// with `Retry-After` — the client has heard nothing and retries by itself, and past capacity the
/// gateway sheds rather than queues (admission) —, and a hedge runs only with room.
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
    /// A departure's wait reached the limit: the request waits for no other departure (helper-116: a car
    /// announces again with every state line, and each would start a wait that new requests yield to).
    private(set) var departureGaveUp = false

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
        case .initial, .retry, .hedge, .restart: return nil
        case .departure where self.departureGaveUp: return nil
        case .failover, .departure: break
        }
        guard zoneBusy, self.limit > .zero else {
            self.since = nil
            return nil
        }
        let since = self.since ?? now
        let left = since + self.limit - now
        guard left > .zero else {
            self.since = nil
            if reason == .departure { self.departureGaveUp = true }
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
