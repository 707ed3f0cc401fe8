import NIOCore

/// Admission by an event loop's own health: the decision that keeps a saturated gateway shedding
/// instead of queueing (issue #19). Pure — no I/O, the clock is passed in — and owned by one event
/// loop (``EventLoopLoad``), so it needs no lock.
///
/// Two signals, either of which sheds a new request with 503 `server_overloaded` and `Retry-After`:
/// - **lag**: how late the loop runs a task it scheduled (``lagMeasured(_:at:)``). A loop that runs
///   late has more work than time: every request it admits now waits behind that backlog. As
///   CoDel does with queueing delay, only a *standing* backlog counts: new requests are refused once
///   every measurement for ``Configuration/lagWindow`` was above ``Configuration/lagThreshold``
///   (a loop stalled that long counts as well), until one comes back at or under half the
///   threshold (hysteresis, so one good sample in a storm does not reopen the gate). A single late
///   timer — a busy neighbour on the machine, one large write — sheds nothing;
/// - **in flight**: requests this loop has admitted and not yet finished, at most
///   ``Configuration/maxInFlight`` (memory and upstream slots stay bounded even when the loop is not
///   behind, e.g. streams that wait on slow cars).
///
/// Refusing is cheap (the body is never read), so the loop spends its time on the requests it
/// admitted: throughput stays near capacity and their latency near its unloaded value.
struct LoadShedder {
    struct Configuration: Sendable, Hashable {
        /// Requests admitted and unfinished on one event loop, at most.
        var maxInFlight: Int
        /// Loop lag above which new requests are shed; zero turns lag shedding off.
        var lagThreshold: TimeAmount
        /// How long the lag must stay above the threshold before shedding starts.
        var lagWindow: TimeAmount = .milliseconds(100)
    }

    enum Decision: Equatable {
        case admit
        /// Refuse: `reason` for the metric label.
        case shed(reason: Reason)
    }

    enum Reason: String, Sendable {
        case lag
        case inFlight = "in_flight"
    }

    var configuration: Configuration
    private(set) var inFlight = 0
    /// Since when every lag measurement was above the threshold (the start of the backlog), or nil.
    private(set) var laggingSince: NIODeadline?
    /// Shedding on lag.
    private(set) var shedding = false
    /// The last lag measured.
    private(set) var lastLag: TimeAmount = .zero

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// A lag measurement: the loop ran a task scheduled for `at - lag` at `at`.
    mutating func lagMeasured(_ lag: TimeAmount, at now: NIODeadline) {
        self.lastLag = lag
        let threshold = self.configuration.lagThreshold
        guard threshold > .zero else {
            self.laggingSince = nil
            self.shedding = false
            return
        }
        if lag > threshold {
            // The loop has been behind since the task was due.
            let since = self.laggingSince ?? (now - lag)
            self.laggingSince = since
            if now - since >= self.configuration.lagWindow { self.shedding = true }
        } else {
            self.laggingSince = nil
            if lag <= TimeAmount.nanoseconds(threshold.nanoseconds / 2) { self.shedding = false }
        }
    }

    /// A new request on this loop: admitted (and counted in flight) or shed.
    mutating func requestArrived() -> Decision {
        if self.shedding { return .shed(reason: .lag) }
        if self.inFlight >= self.configuration.maxInFlight { return .shed(reason: .inFlight) }
        self.inFlight += 1
        return .admit
    }

    /// An admitted request ended.
    mutating func requestFinished() {
        // Never a trap on the request path: an unmatched finish (a bug) must not take every stream
        // down; it is caught in debug builds and clamped in release.
        assert(self.inFlight > 0, "a request finished that was never admitted")
        self.inFlight = max(0, self.inFlight - 1)
    }
}
