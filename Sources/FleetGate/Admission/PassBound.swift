/// How many new requests one pass of an event loop may admit while the loop is overloaded (issue #19):
/// the third hand of ``LoadShedder``. Pure — the caller counts a pass's admissions and passes the
/// measurements in.
///
/// A loop pass reads every ready connection; at 2× capacity that is a batch of a hundred or more
/// requests, all admitted at the refused share, whose upstream answers are then read in the next
/// pass. A stream's TTFT is two or three pass lengths, so the admitted p99 follows the batch, not the
/// loop's lag target: held at its 10 ms target, a loop's passes last 10–15 ms and its admitted p99 is
/// ~5× that at half load, while a cap of 48 admissions a pass gave 2.5× (`LoadTests/README.md`,
/// session 12). A static cap refuses with the loop idle, and at half load too, so this one adapts:
/// - **set** by the first measurement of a loop behind its target (its own delay over the target on
///   a busy loop), to ``Configuration/decrease`` of the largest pass since the previous measurement
///   (none when that pass admitted no more than ``Configuration/minimum``);
/// - **cut** by ``Configuration/decrease`` at every measurement behind the target;
/// - **probed down** by ``Configuration/probe`` at a measurement of a fully busy loop (its thread ran
///   at least ``Configuration/busyToProbe`` of the time it could) that refused on the cap: the
///   smallest batch that keeps the loop busy makes the shortest passes;
/// - **grown** by ``Configuration/increase`` at a measurement of a loop with idle time that refused on
///   the cap: it refused work it had the time for;
/// - **lifted** once the loop is far from its limit and the cap refused, or after
///   ``Configuration/calmMeasurements`` measurements in a row in which it refused nothing.
/// A loop never behind its target never has a cap, and a cap never counts streams in flight, so long
/// car streams and short central ones are held to the same pass length.
struct PassBound: Sendable, Equatable {
    struct Configuration: Sendable, Hashable {
        /// A measurement behind the target sets or cuts the cap to this share.
        var decrease = 0.5
        /// Growth per measurement with idle time, as a share of the cap.
        var increase = 1.0 / 16
        /// The step down per measurement of a fully busy loop, as a share of the cap.
        var probe = 1.0 / 16
        /// The busy share (smoothed, ``Configuration/smoothing``) at and over which the cap is probed
        /// down; under it, it grows.
        var busyToProbe = 0.95
        /// The weight of a measurement's busy share in the smoothed one: a 5 ms window catches a loop
        /// whose passes last 5–10 ms either mid-pass or in `epoll_wait`.
        var smoothing = 0.25
        /// The cap never goes below this, and a loop whose largest pass admitted no more gets none: a
        /// loop relaying car streams admits a few requests a pass, and its lag is the relay's, not a batch's.
        var minimum = 32
        /// Measurements in a row without a refusal on the cap that lift it.
        var calmMeasurements = 20
        /// Measurements after the last one behind the target with a pass larger than ``minimum`` (or
        /// the last with a timed refusal on a busy loop) during which a pass's admissions are still
        /// timed (``timesPasses``): one second at the 5 ms interval.
        var timedMeasurements = 200
        /// The busy share of a measurement (not smoothed) at and over which a timed pass's refusal
        /// keeps passes timed: the loop's `busyThreshold` for being behind.
        var busyToHoldTiming = 0.9
    }

    var configuration = Configuration()
    /// New requests one pass may admit; nil: no cap.
    private(set) var limit: Int?
    /// The most requests a pass admitted since the last measurement.
    private var largestPass = 0
    /// Requests the cap refused since the last measurement.
    private var refusals = 0
    /// Measurements in a row in which the cap refused nothing.
    private var calmRun = 0
    /// The busy share, smoothed over the measurements since the cap was set.
    private var busy = 1.0
    /// Measurements since the last one behind the target with a pass larger than the minimum, or
    /// the last after which a timed pass refused on a busy loop; nil: neither since measuring began.
    private var sinceOverload: Int?
    /// Requests refused since the last measurement because their pass had admitted for its time.
    private var timeRefusals = 0

    /// Whether a pass's admissions are timed (``LoadShedder`` stops admitting once a pass has admitted
    /// for its delay target): while a cap is set, and for ``Configuration/timedMeasurements`` after the
    /// loop was last behind with a pass larger than the minimum, or after a timed pass refused a
    /// request on a busy loop (``Configuration/busyToHoldTiming``). Once passes are short the refused
    /// share and the cap decay away, and the first pass timed by neither would read the whole
    /// backlog at once and put the loop behind again — a cycle of ~130 ms in `LoadShedderTests`'
    /// simulated loop at 4×. A timed pass that still refuses on a busy loop shows the load is still
    /// there. A loop whose passes are long from relaying car streams' tokens, admitting a few each, is
    /// not timed by being behind; nor held timed by its own timed refusals unless it is busy.
    var timesPasses: Bool {
        self.limit != nil || (self.sinceOverload.map { $0 < self.configuration.timedMeasurements } ?? false)
    }

    /// Whether a new request may be admitted in a pass that has admitted `admittedThisPass`; counts a
    /// refusal when not.
    mutating func allows(admittedThisPass: Int) -> Bool {
        guard let limit, admittedThisPass >= limit else { return true }
        self.refusals += 1
        return false
    }

    /// A request was refused because its pass had admitted for its time (``timesPasses``).
    mutating func refusedOnTime() {
        self.timeRefusals += 1
    }

    /// A pass ended having admitted `admitted` new requests.
    mutating func passEnded(admitted: Int) {
        self.largestPass = max(self.largestPass, admitted)
    }

    /// A measurement of the loop: `behind` — its own delay over the target on a busy loop; `busy` —
    /// the share of the time its thread could run that it ran; `idle` — far from its limit.
    mutating func measured(behind: Bool, busy: Double, idle: Bool) {
        defer {
            self.largestPass = 0
            self.refusals = 0
            self.timeRefusals = 0
        }
        let batched = behind && self.largestPass > self.configuration.minimum
        let stillRefusing = self.timeRefusals > 0 && busy >= self.configuration.busyToHoldTiming
        self.sinceOverload = batched || stillRefusing ? 0 : self.sinceOverload.map { $0 + 1 }
        guard let limit = self.limit else {
            // Behind with passes no larger than the minimum: they are not what makes it late.
            guard batched else { return }
            self.calmRun = 0
            self.busy = busy
            self.limit = max(self.configuration.minimum, self.scaled(self.largestPass, by: self.configuration.decrease))
            return
        }
        self.busy += self.configuration.smoothing * (busy - self.busy)
        if behind {
            self.calmRun = 0
            self.limit = max(self.configuration.minimum, self.scaled(limit, by: self.configuration.decrease))
            return
        }
        guard self.refusals > 0 else {
            self.calmRun += 1
            if self.calmRun >= self.configuration.calmMeasurements { self.removeCap() }
            return
        }
        self.calmRun = 0
        if idle { return self.removeCap() }
        if self.busy >= self.configuration.busyToProbe {
            self.limit = max(
                self.configuration.minimum, limit - max(1, self.scaled(limit, by: self.configuration.probe)))
        } else {
            self.limit = limit + max(1, self.scaled(limit, by: self.configuration.increase))
        }
    }

    /// No cap and no timed passes (delay shedding turned off, or the loop no longer measured).
    mutating func lift() {
        self.removeCap()
        self.sinceOverload = nil
    }

    private mutating func removeCap() {
        self.limit = nil
        self.calmRun = 0
    }

    private func scaled(_ value: Int, by share: Double) -> Int { Int(Double(value) * share) }
}
