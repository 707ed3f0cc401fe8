import FleetProtocol

/// The filters a car must pass before any policy sees it (DESIGN.md step 3).
///
/// Two kinds: what follows from the car's state (draining, the owner's policy, room for a job)
/// decides whether it sits in its pools' buckets at all, kept up to date on every update;
/// what changes with the clock or the request (back-off after failures, link quality,
/// departure before the job would end, the zone checked once more) is checked per candidate.
public struct Eligibility: Sendable {
    /// Worst smoothed RTT (ms) that still streams well.
    public var maxRTTMilliseconds: Double
    /// A car departing sooner than this (seconds) is not given new work, even a short job.
    public var minSecondsBeforeDeparture: Int
    /// Least uplink (Mbit/s) that streams well, when the car reports one: a token stream is
    /// ~10 KB/s of SSE at 50 tok/s, so 0.5 Mbit/s leaves room for retransmits and other traffic.
    public var minUplinkMbps: Double

    public init(maxRTTMilliseconds: Double = 400, minSecondsBeforeDeparture: Int = 120, minUplinkMbps: Double = 0.5) {
        self.maxRTTMilliseconds = maxRTTMilliseconds
        self.minSecondsBeforeDeparture = minSecondsBeforeDeparture
        self.minUplinkMbps = minUplinkMbps
    }

    /// The state-derived part: whether the car belongs in the buckets.
    func isAvailable(_ car: FleetRegistry.Car) -> Bool {
        Int(car.inFlight) < car.capacity && self.wouldTakeJobs(car)
    }

    /// Not draining and its owner's policy met: available once a slot frees.
    func wouldTakeJobs(_ car: FleetRegistry.Car) -> Bool {
        guard !car.draining else { return false }
        if car.onlyWhilePlugged && !car.state.pluggedIn { return false }
        return car.state.chargePercent >= car.minChargePercent
    }

    /// Whether a car is capacity expected back soon (``FleetRegistry/hasBusyCapacity(model:zone:now:)``):
    /// it would take jobs, and of the per-request checks it fails at most the ones that pass by
    /// themselves — a full car's slots, a back-off — not its link (RTT, uplink) nor a departure
    /// within ``minSecondsBeforeDeparture``, which may hold for hours.
    func isBusyCapacity(_ car: FleetRegistry.Car, now: Double) -> Bool {
        guard self.wouldTakeJobs(car) else { return false }
        if car.rtt.samples > 0, car.rtt.smoothed > self.maxRTTMilliseconds { return false }
        if let uplink = car.state.uplinkMbps, uplink < self.minUplinkMbps { return false }
        return car.departsAt - now >= Double(self.minSecondsBeforeDeparture)
    }

    /// Whether the request fits the model's context window on this car (a car that did not say
    /// its window fits everything: its runtime refuses what does not).
    static func fits(_ offer: FleetRegistry.Offer, _ request: RequestProfile) -> Bool {
        RequestProfile.window(Int(offer.contextTokens), holds: request.neededContextTokens)
    }

    /// The per-request part, for a car drawn from the request's pool's buckets.
    func admits(_ car: FleetRegistry.Car, zone: Int32, offer: FleetRegistry.Offer, request: RequestProfile, now: Double)
        -> Bool
    {
        guard car.zone == zone else { return false }  // hard: privacy zone, checked again
        // `isAvailable` is not asked again: every car drawn sits in a bucket, and bucket membership
        // is kept equal to it on every update (`FleetRegistry.reindex`).
        guard now >= car.backoffUntil else { return false }
        // Probation (``FleetRegistry/Car/jobLimit``): its buckets know only its capacity.
        if Int(car.inFlight) >= car.jobLimit { return false }
        if car.rtt.samples > 0, car.rtt.smoothed > self.maxRTTMilliseconds { return false }
        if let uplink = car.state.uplinkMbps, uplink < self.minUplinkMbps { return false }
        if car.departsAt != .infinity {
            // Not departing before the job would end, at the advertised rates (the least it can take).
            let job =
                Double(request.promptTokens) / max(1, offer.prefillTokensPerSecond)
                + Double(request.expectedOutputTokens) / max(0.1, offer.decodeTokensPerSecond)
            if car.departsAt - now < max(Double(self.minSecondsBeforeDeparture), job) { return false }
        }
        return true
    }
}
