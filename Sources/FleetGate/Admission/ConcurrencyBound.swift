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
///   most once per ``Configuration/cutInterval``, and not while more are still in flight than the
///   last cut allowed (its effect not yet seen: long streams finish in seconds, not milliseconds);
///   with no more than ``Configuration/minimum`` in flight there is nothing to clip, and no cut;
/// - **growth**: a measurement under the target after the bound refused requests raises it to an
///   eighth (``Configuration/increase``, at least 2) above the bound or the count in flight, if
///   higher; past the loop's `maxInFlight` it is lifted;
/// - **lifted** at once by a measurement of a loop far from its limit that saw a refusal, and after
///   ``Configuration/calmMeasurements`` measurements in a row under the target in which it refused
///   nothing, so a burst after the overload has ended is not refused by a bound set for it.
/// A loop never behind its target never has a bound. While it is behind, a bound can refuse every
/// new request (long streams above it, none finishing): the loop is then saturated by what it holds.
struct ConcurrencyBound: Sendable, Equatable {
    struct Configuration: Sendable, Hashable {
        /// A cut sets the bound to this share of the recent peak in flight.
        var decrease = 0.9
        /// Growth per measurement, as a share of the bound.
        var increase = 0.125
        /// Cuts come at least this far apart.
        var cutInterval: TimeAmount = .milliseconds(20)
        /// The bound never goes below this.
        var minimum = 16
        /// Measurements in a row under the target, the bound refusing nothing itself, that lift it;
        /// also how long after the loop was last behind a refusal after routing still lowers it.
        var calmMeasurements = 20
    }

    var configuration = Configuration()
    /// Requests in flight the loop admits new ones under; nil: no bound.
    private(set) var limit: Int?
    /// The most requests in flight since the last measurement.
    private var peak = 0
    /// Requests the bound refused since the last measurement.
    private var refusals = 0
    private var lastCut: NIODeadline?
    /// Requests refused after routing (their zone busy) since the last measurement.
    private var upstreamBusyRefusals = 0
    /// Measurements since the last one behind the target.
    private var sinceBehind = Int.max / 2
    /// Measurements in a row under the target.
    private var calmRun = 0

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
            self.upstreamBusyRefusals = 0
        }
        self.sinceBehind = behind ? 0 : self.sinceBehind + 1
        guard let limit = self.limit else {
            self.calmRun = 0
            if behind { self.cut(from: max(self.peak, inFlight), at: now) }
            return
        }
        if behind {
            self.calmRun = 0
            // At most once per interval, and not before the last cut has been seen.
            if let last = self.lastCut, now - last < self.configuration.cutInterval { return }
            guard inFlight <= limit else { return }
            self.cut(from: min(limit, max(self.peak, inFlight)), at: now)
            return
        }
        if idle && self.refusals > 0 { return self.lift() }
        // Calm: under the target with nothing refused over the bound — it is not doing any work.
        self.calmRun = self.refusals > 0 ? 0 : self.calmRun + 1
        if self.calmRun >= self.configuration.calmMeasurements { return self.lift() }
        guard self.refusals > 0, self.upstreamBusyRefusals == 0 else { return }
        let base = max(limit, inFlight)
        let grown = base + max(2, Int(Double(base) * self.configuration.increase))
        if grown >= maxInFlight { self.lift() } else { self.limit = grown }
    }

    private mutating func cut(from base: Int, at now: NIODeadline) {
        // Behind with fewer in flight than the minimum: the delay is not theirs to clip.
        guard base > self.configuration.minimum else { return }
        self.limit = max(self.configuration.minimum, Int(Double(base) * self.configuration.decrease))
        self.lastCut = now
    }

    /// A request admitted under the bound was refused after routing, its zone's capacity all busy
    /// (at 2× on one loop, central's `maxConcurrent` of 256 reached inside one pass: a third of the
    /// refusals, each paying for its body, validation and routing). While a bound is set and the
    /// loop was behind within the last ``Configuration/calmMeasurements`` measurements, it comes
    /// down to the count in flight (`inFlight`, this request still counted) — no lower than the
    /// minimum — and does not grow at the next measurement. Otherwise nothing changes: a busy zone
    /// alone neither sets nor keeps a bound on the loop, whose other zones may have room.
    mutating func upstreamBusy(inFlight: Int) {
        // Only while the loop was behind lately: a zone that stays busy after the overload has
        // passed must not hold the bound — and refuse the loop's other zones — for as long as it is.
        guard let limit = self.limit, self.sinceBehind < self.configuration.calmMeasurements else { return }
        self.limit = max(self.configuration.minimum, min(limit, inFlight))
        self.upstreamBusyRefusals += 1
    }

    /// No bound (delay shedding turned off, or the loop no longer measured).
    mutating func lift() {
        self.limit = nil
        self.calmRun = 0
        self.lastCut = nil
    }
}
