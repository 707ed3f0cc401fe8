import NIOCore

/// Admission by an event loop's own health: the decision that keeps a saturated gateway shedding
/// instead of queueing (issue #19). Pure — no I/O, the clock and the measurements are passed in —
/// and owned by one event loop (``EventLoopLoad``), so it needs no lock.
///
/// Two limits, either of which sheds a new request with 503 `server_overloaded` and `Retry-After`:
/// - **delay**: a share of new requests is refused, set by a PI controller (PIE's, RFC 8033) that
///   holds the loop's queueing delay near ``Configuration/lagThreshold``. The delay is the loop's
///   lag — how late it runs a task it scheduled (``measured(lag:thread:at:)``), less any time its
///   thread waited for a CPU — which on a saturated loop is how long a request waits, in the
///   socket and in the loop's batch, before it is read.
///   Every measurement moves the refused share by `α·(delay − target)·dt + β·(delay − previous)`:
///   the first term removes a standing backlog, the second reacts to its growth at once, and a
///   single stall undoes itself (its rise and its fall cancel). The share only **grows** while the
///   delay is above the target *and* the loop's thread ran for at least
///   ``Configuration/busyThreshold`` of the time it could: a lag without load (a blocking call, a
///   machine whose other processes hold the CPUs) sheds nothing, and a loop saturated by a
///   closed-loop client, whose queue is only as long as the client's concurrency, stays under the
///   target and is not shed.
///   It shrinks as soon as the delay is below the target, and faster on an idle loop. Refused
///   requests are spread evenly (a credit per request, not a coin), so the admitted rate is smooth.
///   Measurements only run between loop passes, and one pass can read a burst of thousands of
///   requests; so a request read more than ``Configuration/passCeiling`` × the target after the
///   next measurement was due — in the middle of a pass that long — is refused at once;
/// - **pass**: what one loop pass admits. A stream's TTFT is two or three passes (its request is read
///   in one, its upstream's answer in the next), so the admitted p99 follows the pass length, which the
///   delay target alone holds at 10–15 ms. Once the delay has been over the target, a cap on the
///   requests a pass admits (``PassBound``: probed down while the loop stays busy, grown when it has
///   idle time); and while the loop sheds, and for a second after it was last behind with a large
///   pass (``PassBound/timesPasses``), a pass admits for at most the target from its first
///   admission — the rest of its requests would wait a whole pass anyway. That time is the wall
///   clock's: a pass stretched by other processes holding the CPU refuses too, within that window;
/// - **concurrency**: once the delay has been over the target, a bound on the requests in flight
///   that each measurement over it cuts and one under it, after refusals, raises; a refusal after
///   routing (zone busy) soon after lowers it; lifted once the loop stays under the target without
///   it refusing anything (``ConcurrencyBound``) — it clips the bursts one long pass admits before
///   the share has moved;
/// - **in flight**: requests this loop has admitted and not yet finished, at most
///   ``Configuration/maxInFlight`` (memory and upstream slots stay bounded even when the loop is not
///   behind, e.g. streams that wait on slow cars).
///
/// A refusal is answered before the body is read, but still costs the loop about a tenth of a
/// served request (r; HTTP/2 framing and the 503); at `k`× capacity at most `(1 − k·r)/(1 − r)` of
/// capacity can be admitted — the rest of the loop's time goes to refusals (`LoadTests/README.md`).
struct LoadShedder {
    struct Configuration: Sendable, Hashable {
        /// Requests admitted and unfinished on one event loop, at most.
        var maxInFlight: Int
        /// The queueing delay (loop lag) the controller holds the loop at; zero turns delay
        /// shedding off.
        var lagThreshold: TimeAmount
        /// The share of the time the loop's thread could run that it must have run (not slept in
        /// `epoll_wait`) for the refused share to grow.
        var busyThreshold: Double = 0.9
        /// Integral gain α, per second of excess delay per second.
        var integralGain: Double = 200
        /// Proportional gain β, per second of delay change.
        var proportionalGain: Double = 10
        /// The largest refused share: a few requests still pass, so recovery is seen on them.
        var maxRefused: Double = 0.98
        /// How often the loop is measured (``EventLoopLoad`` schedules the next measurement this
        /// far after the last).
        var interval: TimeAmount = .milliseconds(5)
        /// How often a loop far from its limit is measured: less than half busy, nothing refused,
        /// its lag under a quarter of the target. A measurement wakes the loop and reads the
        /// thread's CPU time from the kernel; every 5 ms on an idle loop that was ~6 % of a relayed
        /// stream's instructions at 50 streams/s. A loop that becomes loaded is seen within this
        /// time, and the in-pass ceiling holds meanwhile.
        var idleInterval: TimeAmount = .milliseconds(50)
        /// A request read this many targets after a measurement was due is refused at once.
        var passCeiling: Int64 = 8
    }

    enum Decision: Equatable {
        case admit
        /// Refuse: `reason` for the metric label.
        case shed(reason: Reason)
    }

    enum Reason: String, Sendable {
        case lag
        case pass
        case concurrency
        case inFlight = "in_flight"
    }

    var configuration: Configuration
    private(set) var inFlight = 0
    /// The share of new requests refused on delay, 0…``Configuration/maxRefused``.
    private(set) var refused = 0.0
    /// The in-flight bound the delay sets.
    private(set) var bound = ConcurrencyBound()
    /// The cap on what one loop pass admits, which the delay sets.
    private(set) var passBound = PassBound()
    /// Requests admitted since the current loop pass began (``passEnded()``).
    private(set) var passAdmitted = 0
    /// When the current pass's first admission began: the last screen while the pass had admitted
    /// nothing (a request shed later in ``screen(at:waited:)`` may set it; the next one resets it).
    private var passStart: NIODeadline?
    /// Admission credit: each request adds `1 − refused`; a request is admitted when it reaches 1.
    private var credit = 0.0
    /// The last lag measured.
    private(set) var lastLag: TimeAmount = .zero
    /// The last lag the loop caused itself: the lag less the time its thread waited for a CPU.
    private(set) var lastOwnLag: TimeAmount = .zero
    /// The busy share of the last measurement.
    private(set) var lastBusy = 0.0
    private var lastMeasured: NIODeadline?
    /// When the next measurement is due; nil while the loop is not measured.
    private var nextDue: NIODeadline?
    /// How long after the last measurement the next one is due: ``Configuration/interval``, or
    /// ``Configuration/idleInterval`` while the loop is far from its limit.
    private(set) var nextInterval: TimeAmount
    /// Requests screened since the last measurement: a burst on a loop measured at the idle
    /// interval asks for the next measurement early (``wantsEarlyMeasurement``).
    private var arrivalsSinceMeasurement = 0

    /// How the loop's thread spent the time since the previous measurement.
    struct ThreadTime: Equatable {
        /// On a CPU.
        var running: TimeAmount
        /// Runnable, waiting for a CPU that other threads or processes held.
        var waiting: TimeAmount
    }

    init(configuration: Configuration) {
        self.configuration = configuration
        self.nextInterval = configuration.interval
    }

    /// A measurement: the loop ran a task scheduled for `now - lag` at `now`; `thread` is how its
    /// thread spent the time since the previous measurement (nil when the platform cannot tell:
    /// then the whole lag counts and the loop counts as busy).
    ///
    /// Time spent waiting for a CPU is not the loop's own queue: on a machine whose other
    /// processes hold the CPUs, the lag grows whatever the loop admits, and shedding on it would
    /// only ratchet up (a closed-loop client would be refused a share for nothing). So the delay
    /// the controller holds is the lag less that wait, and "busy" is the share of the time the
    /// thread *could* run that it did run (not sleeping in `epoll_wait`).
    mutating func measured(lag: TimeAmount, thread: ThreadTime?, at now: NIODeadline) {
        let previousOwnLag = self.lastOwnLag
        let previous = self.lastMeasured
        var ownLag = lag
        var busy = 1.0
        if let thread, let previous, now > previous {
            ownLag = max(.zero, lag - thread.waiting)
            let available = (now - previous) - thread.waiting
            if available > .zero { busy = min(1, Double(thread.running.nanoseconds) / Double(available.nanoseconds)) }
        }
        self.lastLag = lag
        self.lastOwnLag = ownLag
        self.lastBusy = busy
        self.lastMeasured = now
        self.arrivalsSinceMeasurement = 0
        defer { self.nextDue = now + self.nextInterval }
        let target = self.configuration.lagThreshold
        guard target > .zero else {
            self.refused = 0
            self.bound.lift()
            self.passBound.lift()
            self.nextInterval = self.configuration.idleInterval
            return
        }
        // Far from its limit: little busy, the delay well under the target.
        let quiet = busy < self.configuration.busyThreshold / 2 && ownLag * 4 < target
        defer {
            let idle = quiet && self.refused == 0
            self.nextInterval = idle ? self.configuration.idleInterval : self.configuration.interval
        }
        let behind = ownLag > target && busy >= self.configuration.busyThreshold
        self.bound.measured(
            behind: behind, idle: quiet, inFlight: self.inFlight, maxInFlight: self.configuration.maxInFlight, at: now)
        self.passBound.measured(behind: behind, busy: busy, idle: quiet)
        // A long gap (the first measurement, a stall) counts as one interval's worth of time.
        let dt = previous.map { min(0.1, max(0, Double((now - $0).nanoseconds) / 1e9)) } ?? 0.005
        let excess = Double((ownLag - target).nanoseconds) / 1e9
        let rise = Double((ownLag - previousOwnLag).nanoseconds) / 1e9
        var change = self.configuration.integralGain * excess * dt + self.configuration.proportionalGain * rise
        if change > 0 && (ownLag <= target || busy < self.configuration.busyThreshold) {
            change = 0  // the delay gate: grow only on a standing queue of a loaded loop
        }
        if busy < self.configuration.busyThreshold / 2 { change = min(change, -self.refused / 4) }
        let refused = min(self.configuration.maxRefused, self.refused + change)
        self.refused = refused < 0.001 ? 0 : refused  // a decay reaches zero
    }

    /// Whether the next measurement should come now rather than at the idle interval: this many
    /// requests arrived since the last one on a loop measured as idle (a burst on an idle loop is
    /// then seen within ~5 ms, as on a busy one). The caller re-arms and calls ``measuringSoon()``.
    var wantsEarlyMeasurement: Bool {
        self.nextInterval > self.configuration.interval && self.arrivalsSinceMeasurement >= 16
    }

    /// The next measurement was brought forward to ``Configuration/interval`` after the last one.
    mutating func measuringSoon() {
        self.nextInterval = self.configuration.interval
        if let last = self.lastMeasured { self.nextDue = last + self.configuration.interval }
    }

    /// The loop is no longer measured (shutdown): the in-pass ceiling no longer applies.
    mutating func measurementsStopped() {
        self.nextDue = nil
        self.lastMeasured = nil
        self.refused = 0
        self.bound.lift()
        self.passBound.lift()
    }

    /// Whether a request read at `now` is inside a loop pass longer than the in-pass ceiling —
    /// before the time the thread waited for a CPU is taken off (the caller then reads it, and
    /// passes it to ``requestArrived(at:waited:)``; a pass that long is rare, a read costs ~2 µs).
    func isPastCeiling(at now: NIODeadline) -> Bool {
        let target = self.configuration.lagThreshold
        guard target > .zero, let due = self.nextDue else { return false }
        return now - due > target * self.configuration.passCeiling
    }

    /// A new request on this loop, read at `now`: admitted (and counted in flight) or shed.
    /// `waited`: how long the thread waited for a CPU since the last measurement, when
    /// ``isPastCeiling(at:)`` (a pass made long by the machine's other processes is not the
    /// loop's queue).
    mutating func requestArrived(at now: NIODeadline, waited: TimeAmount = .zero) -> Decision {
        let decision = self.screen(at: now, waited: waited)
        if decision == .admit { self.admitted() }
        return decision
    }

    /// The decision on a new request, without counting it in flight: the first half of
    /// ``requestArrived(at:waited:)``, taken as soon as a request's route is known (its HTTP/2
    /// header block), so a refusal costs as little as possible; ``admitted()`` is the second half,
    /// once the request is known to go on (authenticated). Spends the request's admission credit.
    mutating func screen(at now: NIODeadline, waited: TimeAmount = .zero) -> Decision {
        self.arrivalsSinceMeasurement += 1
        if self.isPastCeiling(at: now - waited) { return .shed(reason: .lag) }
        if !self.passBound.allows(admittedThisPass: self.passAdmitted) { return .shed(reason: .pass) }
        // While the loop sheds or was lately behind with a large pass, a pass that has admitted for
        // longer than the target admits no more (its requests would wait for the whole of it, and for
        // the next). Not otherwise: a pass made long by relaying car streams' tokens is no overload.
        let target = self.configuration.lagThreshold
        if self.passBound.timesPasses || self.refused > 0, target > .zero, self.passAdmitted > 0,
            let start = self.passStart, now - start > target
        {
            self.passBound.refusedOnTime()
            return .shed(reason: .pass)
        }
        if self.passAdmitted == 0 { self.passStart = now }
        if self.refused > 0 {
            self.credit += 1 - self.refused
            guard self.credit >= 1 else { return .shed(reason: .lag) }
            self.credit -= 1
        } else {
            self.credit = 0
        }
        if self.inFlight >= self.configuration.maxInFlight { return .shed(reason: .inFlight) }
        if !self.bound.allows(inFlight: self.inFlight) { return .shed(reason: .concurrency) }
        return .admit
    }

    /// What the loop does about its pass's count after an admission.
    enum PassAction: Equatable, Sendable {
        case none
        /// The pass's first admission on a loop whose passes are counted: call ``passEnded()`` from a
        /// task submitted now — NIO runs it after the pass's I/O, which is where the pass ends.
        case endAfterThisPass
    }

    /// A request that passed ``screen(at:waited:)`` goes on: it is counted in flight until
    /// ``requestFinished()``. A loop far from its limit (``countsPasses`` false) ends the pass's count
    /// at once: no task a request.
    @discardableResult
    mutating func admitted() -> PassAction {
        self.inFlight += 1
        self.passAdmitted += 1
        self.bound.admitted(inFlight: self.inFlight)
        guard self.passAdmitted == 1 else { return .none }
        guard self.countsPasses else {
            self.passEnded()
            return .none
        }
        return .endAfterThisPass
    }

    /// Whether the loop's passes are counted (``passEnded()`` after each): while it is measured at the
    /// busy interval. A loop far from its limit ends each pass's count at once instead of submitting a
    /// task a pass.
    var countsPasses: Bool { self.nextInterval <= self.configuration.interval }

    /// The loop pass in which requests were admitted has ended: what it admitted is counted for the
    /// pass cap, and the next pass starts from none.
    mutating func passEnded() {
        self.passBound.passEnded(admitted: self.passAdmitted)
        self.passAdmitted = 0
        self.passStart = nil
    }

    /// A request this loop admitted was refused after routing: everything in its zone serving its
    /// model was busy. While a concurrency bound is set and the loop was behind lately, the bound
    /// comes down to the count in flight, so the next requests over it are refused on their header block
    /// instead of after their body, validation and routing (``ConcurrencyBound/upstreamBusy(inFlight:)``).
    mutating func upstreamBusy() {
        self.bound.upstreamBusy(inFlight: self.inFlight)
    }

    /// An admitted request ended.
    mutating func requestFinished() {
        // Never a trap on the request path: an unmatched finish (a bug) must not take every stream
        // down; it is caught in debug builds and clamped in release.
        assert(self.inFlight > 0, "a request finished that was never admitted")
        self.inFlight = max(0, self.inFlight - 1)
    }
}
