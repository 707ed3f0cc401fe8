import NIOCore

/// The in-flight bound an event loop sets itself while it runs behind its delay target (issue #19):
/// AIMD on the loop's own queueing delay, the second hand of ``LoadShedder``. Pure — the caller
/// passes the measurements and the clock.
///
/// ``LoadShedder``'s refused share is set every few milliseconds, but a loop pass can read hundreds
/// of queued requests at once and admit them all at the share; each one admitted adds its work to
/// the passes after it, and the streams in flight — each with its own upstream connection — make
/// every stream dearer (at 2× on one loop the in-flight count swung 40–256 under the share alone,
/// and an admitted stream cost 150–185 µs against ~110 µs closed-loop; `LoadTests/README.md`,
/// session 11). The bound caps that count:
/// - **cut**: a measurement over the target on a busy loop sets the bound to ``Configuration/decrease``
///   of the most requests in flight since the previous measurement (or of the bound, if lower) — at
///   most once per ``Configuration/cutInterval``, so a cut is seen before the next; with no more
///   than ``Configuration/minimum`` in flight there is nothing to clip, and no cut;
/// - **growth**: a measurement under the target after the bound refused requests raises it by
///   ``Configuration/increase`` of itself (at least 2); past the loop's `maxInFlight` it is lifted;
/// - **lifted** after ``Configuration/idleMeasurements`` measurements in a row of a loop far from its
///   limit, so a burst after the overload has ended is not refused by a bound set for it.
/// A loop never behind its target never has a bound: long streams waiting on cars, which cost the
/// loop little, are not counted against one.
struct ConcurrencyBound: Sendable, Equatable {
    struct Configuration: Sendable, Hashable {
        /// A cut sets the bound to this share of the recent peak in flight.
        var decrease = 0.9
        /// Growth per measurement, as a share of the bound.
        var increase = 0.125
        /// Cuts come at least this far apart.
        var cutInterval: TimeAmount = .milliseconds(20)
        /// The bound never goes below this: a few requests still pass, so recovery is seen on them.
        var minimum = 16
        /// Measurements in a row of a loop far from its limit that lift the bound.
        var idleMeasurements = 4
    }

    var configuration = Configuration()
    /// Requests in flight the loop admits new ones under; nil: no bound.
    private(set) var limit: Int?
    /// The most requests in flight since the last measurement.
    private var peak = 0
    /// Requests the bound refused since the last measurement.
    private var refusals = 0
    private var lastCut: NIODeadline?
    private var idleRun = 0

    /// Whether a new request may be admitted with `inFlight` requests already in flight; counts a
    /// refusal when not.
    mutating func allows(inFlight: Int) -> Bool {
        guard let limit, inFlight >= limit else { return true }
        self.refusals += 1
        return false
    }

    /// A request was admitted; `inFlight` now counts it.
    mutating func admitted(inFlight: Int) {
        self.peak = max(self.peak, inFlight)
    }

    /// A measurement of the loop: `behind` — its own delay over the target on a busy loop; `idle` —
    /// far from its limit (little busy, delay well under the target); `inFlight` now; the loop's
    /// `maxInFlight`, past which the bound is lifted.
    mutating func measured(behind: Bool, idle: Bool, inFlight: Int, maxInFlight: Int, at now: NIODeadline) {
        defer {
            self.peak = inFlight
            self.refusals = 0
        }
        if idle {
            self.idleRun += 1
            if self.idleRun >= self.configuration.idleMeasurements { self.limit = nil }
            return
        }
        self.idleRun = 0
        if behind {
            if let last = self.lastCut, now - last < self.configuration.cutInterval { return }
            let base = min(self.limit ?? .max, max(self.peak, inFlight))
            // Behind with fewer in flight than the minimum: the delay is not theirs to clip.
            guard base > self.configuration.minimum else { return }
            self.limit = max(self.configuration.minimum, Int(Double(base) * self.configuration.decrease))
            self.lastCut = now
        } else if let limit = self.limit, self.refusals > 0 {
            let grown = limit + max(2, Int(Double(limit) * self.configuration.increase))
            self.limit = grown >= maxInFlight ? nil : grown
        }
    }

    /// No bound (delay shedding turned off, or the loop no longer measured).
    mutating func lift() {
        self.limit = nil
        self.idleRun = 0
        self.lastCut = nil
    }
}
