import NIOCore

/// Admission by an event loop's own health: the decision that keeps a saturated gateway shedding
/// instead of queueing (issue #19). Pure — no I/O, the clock is passed in — and owned by one event
/// loop (``EventLoopLoad``), so it needs no lock.
///
/// Three signals, each of which sheds a new request with 503 `server_overloaded` and `Retry-After`:
/// - **utilization**: the share of time the loop is busy rather than asleep in `epoll_wait`
///   (``tickMeasured(busy:slept:)``, from NIO's per-tick report). A loop that never sleeps cannot
///   see how much waits in its sockets — the backlog that made admitted streams wait hundreds of
///   milliseconds at twice capacity while the lag stayed modest; a loop that sleeps now and then
///   has, by definition, read everything. So it drives a **share of new requests to shed**
///   (``dropFraction``), a controller in the manner of PIE (RFC 8033) rather than an on/off gate:
///   after two consecutive ``utilizationWindow``s at ``saturated`` or more the share starts at
///   ``utilizationOnsetFraction`` and grows by ``utilizationStep`` per saturated window; under
///   ``relaxed`` it decays per window by ``decreaseStep`` plus half the distance under; between, it holds. It settles where the
///   loop is just short of saturated: its reads keep up, and what it admits waits little.
/// - **lag**: how late the loop runs a task it scheduled (``lagMeasured(_:at:)``): a stall. Only a
///   *standing* backlog counts, as CoDel does with queueing delay: once every measurement for
///   ``Configuration/lagWindow`` was above ``Configuration/lagThreshold`` (a loop stalled that long
///   counts as well) the share jumps to at least ``onsetFraction``, and grows with every further
///   measurement above the threshold, by ``increaseStep`` times how far above (at most 4×). A
///   single late timer — a busy neighbour on the machine, one large write — sheds nothing. Without
///   utilization reports (a group the gateway did not create), the share decays by
///   ``decreaseStep`` per measurement at or under half the threshold.
///   Shed requests are spread evenly (a credit counter, not a random draw: no generator on the
///   request path, and tests see exact counts). `lagThreshold` zero turns both off.
/// - **in flight**: requests this loop has admitted and not yet finished, at most
///   ``Configuration/maxInFlight`` (memory and upstream slots stay bounded even when the loop is not
///   behind, e.g. streams that wait on slow cars).
///
/// Refusing is cheap (the body is never read; 0.04–0.07 CPU-ms against ~0.45 for a served
/// stream), so the loop spends its time on the requests it admitted.
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

    /// The share shed when a standing backlog is first found.
    static let onsetFraction = 0.5
    /// The share's growth per measurement above the threshold (times lag ÷ threshold, at most 4).
    static let increaseStep = 0.05
    /// The share's decay per measurement at or under half the threshold.
    static let decreaseStep = 0.01
    /// The most shed: some requests always get through, so the loop keeps measuring real work.
    static let maximumFraction = 0.95
    /// The span over which utilization is measured.
    static let utilizationWindow = TimeAmount.milliseconds(50)
    /// Utilization at or above which a window counts as saturated.
    static let saturated = 0.98
    /// Utilization under which the share decays.
    static let relaxed = 0.90
    /// The share shed after two saturated windows in a row.
    static let utilizationOnsetFraction = 0.1
    /// The share's growth per saturated window.
    static let utilizationStep = 0.05

    var configuration: Configuration
    private(set) var inFlight = 0
    /// Since when every lag measurement was above the threshold (the start of the backlog), or nil.
    private(set) var laggingSince: NIODeadline?
    /// The share of new requests shed on lag, 0 … ``maximumFraction``.
    private(set) var dropFraction = 0.0
    /// Spreads the shed requests: each arrival adds ``dropFraction``; a whole one sheds.
    private var dropCredit = 0.0
    /// The last lag measured.
    private(set) var lastLag: TimeAmount = .zero
    /// Busy and total (busy + asleep) nanoseconds in the current utilization window.
    private var windowBusy: Int64 = 0
    private var windowTotal: Int64 = 0
    private var saturatedWindows = 0
    /// The utilization of the last whole window, once ticks are reported.
    private(set) var lastUtilization: Double?

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// A lag measurement: the loop ran a task scheduled for `at - lag` at `at`.
    mutating func lagMeasured(_ lag: TimeAmount, at now: NIODeadline) {
        self.lastLag = lag
        let threshold = self.configuration.lagThreshold
        guard threshold > .zero else {
            self.laggingSince = nil
            self.dropFraction = 0
            self.dropCredit = 0
            self.lastUtilization = nil
            return
        }
        if lag > threshold {
            // The loop has been behind since the task was due.
            let since = self.laggingSince ?? (now - lag)
            self.laggingSince = since
            if now - since >= self.configuration.lagWindow, self.dropFraction < Self.onsetFraction {
                self.dropFraction = Self.onsetFraction
                self.dropCredit = 1 - Self.onsetFraction  // the next arrival is the first shed
            } else if self.dropFraction > 0 {
                let over = min(Double(lag.nanoseconds) / Double(threshold.nanoseconds), 4)
                self.dropFraction = min(Self.maximumFraction, self.dropFraction + Self.increaseStep * over)
            }
        } else {
            self.laggingSince = nil
            // With utilization reports, decay is theirs: a loop that sheds enough runs on time
            // while it is still saturated.
            if self.lastUtilization == nil, lag <= TimeAmount.nanoseconds(threshold.nanoseconds / 2) {
                self.decay()
            }
        }
    }

    /// One event-loop tick: `busy` running it, `slept` waiting for work before it.
    mutating func tickMeasured(busy: TimeAmount, slept: TimeAmount) {
        guard self.configuration.lagThreshold > .zero else {
            self.windowBusy = 0
            self.windowTotal = 0
            self.saturatedWindows = 0
            return
        }
        self.windowBusy += max(0, busy.nanoseconds)
        self.windowTotal += max(0, busy.nanoseconds) + max(0, slept.nanoseconds)
        guard self.windowTotal >= Self.utilizationWindow.nanoseconds else { return }
        let utilization = Double(self.windowBusy) / Double(self.windowTotal)
        self.windowBusy = 0
        self.windowTotal = 0
        self.lastUtilization = utilization
        if utilization >= Self.saturated {
            self.saturatedWindows += 1
            if self.dropFraction > 0 {
                self.dropFraction = min(Self.maximumFraction, self.dropFraction + Self.utilizationStep)
            } else if self.saturatedWindows >= 2 {
                self.dropFraction = Self.utilizationOnsetFraction
                self.dropCredit = 1 - Self.utilizationOnsetFraction  // the next arrival is the first shed
            }
        } else {
            self.saturatedWindows = 0
            // The further under, the faster: an idle loop must not keep refusing work.
            if utilization < Self.relaxed { self.decay(by: Self.decreaseStep + (Self.relaxed - utilization) / 2) }
        }
    }

    private mutating func decay(by step: Double = Self.decreaseStep) {
        self.dropFraction = max(0, self.dropFraction - step)
        if self.dropFraction == 0 { self.dropCredit = 0 }
    }

    /// A new request on this loop: admitted (and counted in flight) or shed.
    mutating func requestArrived() -> Decision {
        if self.dropFraction > 0 {
            self.dropCredit += self.dropFraction
            if self.dropCredit >= 1 {
                self.dropCredit -= 1
                return .shed(reason: .lag)
            }
        }
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
