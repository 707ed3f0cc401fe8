import NIOCore

/// When a failing central endpoint is taken out of rotation, and for how long: Envoy's outlier
/// detection — failures in a row eject it for a time that doubles with each ejection in a row.
///
/// Three failed attempts in a row take it out. A probe of its model list used to put it back within a
/// second, so an endpoint that lists its models but fails every completion (a 500) flapped in and out
/// each second, three clients failing each time, and the log said nothing (helper-131). Now it stays
/// out 1 s after its first ejection, then 2, 4, … up to 30 s while it keeps failing (its probe brings
/// it back only once that time has passed, and then a single failure takes it out again); an attempt
/// that is served ends the run.
struct CentralEjection: Sendable, Hashable {
    /// Failed attempts in a row that take the endpoint out.
    static let failuresToEject = 3
    /// How long the first ejection of a run lasts; each next one twice the last, up to ``longest``.
    static let first = TimeAmount.seconds(1)
    static let longest = TimeAmount.seconds(30)

    /// Failed attempts in a row since the last ejection or success.
    private(set) var failuresInARow = 0
    /// Ejections since the last attempt that was served.
    private(set) var ejections = 0
    /// Until when the endpoint stays out whatever its probe says; nil when it is not ejected.
    private(set) var until: NIODeadline?

    /// What an outcome changed, for the log.
    enum News: Equatable {
        case none
        /// Taken out for this long (the `ejections`-th time in a row).
        case ejected(for: TimeAmount, ejections: Int)
        /// Served after `ejections` ejections in a row.
        case recovered(ejections: Int)
    }

    /// An attempt on the endpoint failed at `now`. One that fails while the endpoint is out — it was in
    /// flight when the endpoint was taken out — counts for nothing (helper-132: a restart with 18
    /// streams in flight made six ejections at once, 30 s out on a first incident), as Envoy does not eject
    /// an ejected host again.
    mutating func failed(at now: NIODeadline) -> News {
        guard !self.holdsOut(at: now) else { return .none }
        self.failuresInARow += 1
        // Back from an ejection, it is on trial: one failure takes it out again (helper-133: three more
        // clients failed at each return of an endpoint that kept failing).
        guard self.failuresInARow >= (self.ejections > 0 ? 1 : Self.failuresToEject) else { return .none }
        self.failuresInARow = 0
        self.ejections += 1
        var length = Self.first
        for _ in 1..<self.ejections where length < Self.longest { length = .nanoseconds(length.nanoseconds * 2) }
        length = min(length, Self.longest)
        self.until = now + length
        return .ejected(for: length, ejections: self.ejections)
    }

    /// An attempt on the endpoint was served (a first token or a whole answer).
    mutating func served() -> News {
        defer {
            self.failuresInARow = 0
            self.ejections = 0
            self.until = nil
        }
        return self.ejections > 0 ? .recovered(ejections: self.ejections) : .none
    }

    /// Whether the endpoint must stay out at `now` (its probe may not bring it back yet).
    func holdsOut(at now: NIODeadline) -> Bool {
        guard let until else { return false }
        return now < until
    }

    /// While the endpoint is out after an ejection, or its probe is about to bring it back (within
    /// `grace` of the ejection's end), the seconds until it may serve again (at least 1); else nil.
    func retryAfter(at now: NIODeadline, grace: TimeAmount) -> Int? {
        guard let until, now < until + grace else { return nil }
        return RetryAfter.seconds(until: until, now: now)
    }
}
