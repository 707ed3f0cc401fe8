import FleetProtocol
import Foundation

/// One decision's walk over a (zone, model) pool. Every policy draws from the same buckets
/// through the same ``Eligibility`` check; they differ only in which cars they draw and how
/// they order them.
struct Selector {
    let registry: FleetRegistry
    let request: RequestProfile
    let excluding: [CarID]
    let now: Double
    let limit: Int
    /// Whether a held-back car (``FleetRegistry/Car/isHeldBack(now:)``: warming up, or just after a lost
    /// hedge race) is passed over; the count of those passed over, so that a decision that found nothing
    /// knows whether to look again without it.
    var slowStart = true
    private(set) var warmingUpPassed = 0
    /// Whether a car whose context window the request does not fit (``Eligibility/fits(_:_:)``) is
    /// passed over; the count of those passed over.
    var checksWindows = true
    private(set) var tooSmallPassed = 0
    /// Set by ``select(in:)``: the request's zone as the registry numbers it, and the churn hazard.
    private var zone: Int32 = -1
    private var hazard: Double = 0
    /// Cars holding a prefix of the request (prefix-cache affinity, `predictive` only): slot and
    /// the tokens of the longest prefix each holds.
    private var held: [(slot: Int, tokens: Int)] = []

    init(registry: FleetRegistry, request: RequestProfile, excluding: [CarID], now: Double, limit: Int) {
        self.registry = registry
        self.request = request
        self.excluding = excluding
        self.now = now
        self.limit = limit
    }

    /// Draws that fail the per-request checks before a policy gives up on sampling and walks
    /// the buckets in order (bounded by ``walkLimit``).
    static let maxDraws = 64
    static let walkLimit = 4_096

    private struct Candidate {
        var slot: Int
        var inFlight: Int32
        var slots: Int
        var prefillRate: Double
        var contextTokens: Int32
        var prediction: LatencyPredictor.Prediction
        var cost: Double
    }

    mutating func select(in s: inout FleetRegistry.Storage) -> Decision {
        let policy = self.registry.policy
        self.zone = s.zoneIndex[self.request.zone] ?? -1
        self.hazard = s.churn.hazard
        guard let index = s.poolIndex[.init(zone: self.request.zone, model: self.request.model)] else {
            return Decision(choices: [], policy: policy, evaluated: 0)
        }
        let pool = Int(index)
        guard s.pools[pool].available > 0 else { return Decision(choices: [], policy: policy, evaluated: 0) }
        var found: [Candidate] = []
        found.reserveCapacity(max(self.registry.probes, 2 * self.limit))
        switch policy {
        case .predictive, .leastOutstandingFastest, .weightedLeastRequest, .shortestExpectedPrefill:
            // Prefix-cache affinity: the cars holding the request's prefix are candidates too (a
            // term in the score, not a pin: each is still checked and ranked like any probe).
            if policy == .predictive { self.addHolders(pool: pool, into: &found, s: &s) }
            // The same probes for every policy that ranks a probed set: a quarter uniformly over
            // every available car, so busy but fast cars (an AI5 with 8 slots is rarely idle) are
            // seen; the rest from the least-loaded bucket up.
            let probes = self.registry.probes
            self.drawUniform(probes / 4, pool: pool, into: &found, s: &s)
            self.probeLeastLoadedFirst(probes, pool: pool, into: &found, s: &s)
            switch policy {
            case .leastOutstandingFastest:
                for i in found.indices { found[i].cost = Double(found[i].inFlight) }
                Self.rankFirst(self.limit, of: &found) {
                    ($0.inFlight, -$0.prefillRate, $0.slot) < ($1.inFlight, -$1.prefillRate, $1.slot)
                }
            case .weightedLeastRequest:
                for i in found.indices { found[i].cost = Double(found[i].inFlight + 1) / Double(found[i].slots) }
                Self.rankFirst(self.limit, of: &found) { ($0.cost, $0.slot) < ($1.cost, $1.slot) }
            case .shortestExpectedPrefill:
                for i in found.indices { found[i].cost = found[i].prediction.advertisedTTFT }
                Self.rankFirst(self.limit, of: &found) { ($0.cost, $0.slot) < ($1.cost, $1.slot) }
            default:
                Self.rankFirst(self.limit, of: &found) { ($0.cost, $0.slot) < ($1.cost, $1.slot) }
            }
        case .random:
            self.drawUniform(self.limit, pool: pool, into: &found, s: &s)
        case .roundRobin:
            self.walkRoundRobin(pool: pool, into: &found, s: &s)
        case .leastOutstanding:
            self.probeLeastLoadedFirst(self.limit, pool: pool, into: &found, s: &s)
            Self.rankFirst(self.limit, of: &found) { ($0.inFlight, $0.slot) < ($1.inFlight, $1.slot) }
        case .p2cLeastOutstanding, .p2cPeakEWMA:
            self.drawUniform(2 * self.limit, pool: pool, into: &found, s: &s)
            if policy == .p2cPeakEWMA {
                for i in found.indices {
                    let car = s.cars[found[i].slot]!
                    let decay = exp(-max(0, self.now - car.peak.stamp) / 10)
                    found[i].cost = car.peak.cost * decay * Double(car.inFlight + 1)
                }
            } else {
                for i in found.indices { found[i].cost = Double(found[i].inFlight) }
            }
            // Tournaments of two: each pair's winner, in draw order, then the losers.
            var winners: [Candidate] = []
            var losers: [Candidate] = []
            var i = 0
            while i < found.count {
                if i + 1 < found.count {
                    let (a, b) = (found[i], found[i + 1])
                    let aWins = a.cost < b.cost || (a.cost == b.cost && s.random.next() & 1 == 0)
                    winners.append(aWins ? a : b)
                    losers.append(aWins ? b : a)
                } else {
                    winners.append(found[i])
                }
                i += 2
            }
            found = winners + losers
        }
        let evaluated = found.count
        let choices = found.prefix(self.limit).map { c in
            Choice(
                route: .car(CarID(slot: c.slot, generation: s.generations[c.slot])),
                predictedTTFTMilliseconds: c.prediction.ttft, predictedTPOTMilliseconds: c.prediction.tpot,
                score: policy == .predictive ? c.prediction.score : c.cost,
                predictedRTTMilliseconds: c.prediction.rtt, predictedQueueMilliseconds: c.prediction.queue,
                advertisedTTFTMilliseconds: c.prediction.advertisedTTFT, cachedPrefixTokens: c.prediction.cachedTokens,
                prefixCreditMilliseconds: c.prediction.prefixCredit, slowStartWaived: !self.slowStart,
                contextTokens: Int(c.contextTokens))
        }
        return Decision(choices: choices, policy: policy, evaluated: evaluated)
    }

    /// Moves the best `k` candidates to the front, in order (a partial selection sort: k is the
    /// decision's short list, a full sort of every probe would be wasted).
    private static func rankFirst(_ k: Int, of found: inout [Candidate], by better: (Candidate, Candidate) -> Bool) {
        for i in 0..<min(k, found.count) {
            var best = i
            for j in (i + 1)..<found.count where better(found[j], found[best]) { best = j }
            if best != i { found.swapAt(i, best) }
        }
    }

    /// Looks the request's prefixes up in the pool's map and evaluates the live holders that are
    /// available (not full, not draining); each gets the credit of the longest prefix it holds.
    private mutating func addHolders(pool: Int, into found: inout [Candidate], s: inout FleetRegistry.Storage) {
        let affinity = self.registry.affinity
        guard affinity.enabled, !self.request.prefixes.isEmpty, s.pools[pool].prefixes != nil else { return }
        let holders = s.pools[pool].prefixes!.lookup(
            self.request.prefixes, now: self.now, limit: affinity.holdersPerEntry + 1)
        for (holder, tokens) in holders where holder.id != PrefixCacheMap.central {
            let id = CarID(holder.id)
            // A car that left (its id's generation) or lost its cache (its epoch) holds nothing.
            guard let car = s.car(id), car.cacheEpoch == holder.epoch, car.cachesPrefixes else { continue }
            self.held.append((id.slot, Int(tokens)))
            guard car.bucket >= 0 else { continue }
            if let c = self.evaluate(Int32(id.slot), pool: pool, found: found, s: &s) { found.append(c) }
        }
    }

    /// Evaluates one car; nil when it fails a per-request check or was already taken.
    private mutating func evaluate(_ slot: Int32, pool: Int, found: [Candidate], s: inout FleetRegistry.Storage)
        -> Candidate?
    {
        let slot = Int(slot)
        guard let car = s.cars[slot], !found.contains(where: { $0.slot == slot }) else { return nil }
        if !self.excluding.isEmpty, self.excluding.contains(CarID(slot: slot, generation: s.generations[slot])) {
            return nil
        }
        let offer: FleetRegistry.Offer
        if car.primary.pool == Int32(pool) {
            offer = car.primary
        } else if let index = s.offerIndex(slot, pool: Int32(pool)) {
            offer = s.offer(slot, index)
        } else {
            return nil
        }
        guard self.registry.eligibility.admits(car, zone: self.zone, offer: offer, request: self.request, now: self.now)
        else { return nil }
        if self.checksWindows && !Eligibility.fits(offer, self.request) {
            self.tooSmallPassed += 1
            return nil
        }
        if self.slowStart && car.isHeldBack(now: self.now) {
            self.warmingUpPassed += 1
            return nil
        }
        var cached = 0
        for h in self.held where h.slot == slot { cached = h.tokens }
        let prediction = self.registry.predictor.predict(
            car, offer: offer, request: self.request, churnHazard: self.hazard, now: self.now, cachedTokens: cached,
            hitProbability: car.hits.probability)
        return Candidate(
            slot: slot, inFlight: car.inFlight, slots: car.slots, prefillRate: offer.prefillTokensPerSecond,
            contextTokens: offer.contextTokens, prediction: prediction, cost: prediction.score)
    }

    /// A uniformly random available car of the pool; nil only if the pool's count disagrees with
    /// its buckets (a bug, caught in debug builds; in release the caller walks the buckets instead
    /// of taking every stream down).
    private func draw(pool: Int, s: inout FleetRegistry.Storage) -> Int32? {
        guard s.pools[pool].available > 0 else { return nil }
        var r = Int(s.random.next() % UInt64(s.pools[pool].available))
        for bucket in s.pools[pool].buckets {
            if r < bucket.count { return bucket[r] }
            r -= bucket.count
        }
        assertionFailure("Internal inconsistency: pool count disagrees with its buckets")
        return nil
    }

    /// Up to `wanted` eligible cars drawn uniformly (with a bounded number of draws, then a walk).
    private mutating func drawUniform(
        _ wanted: Int, pool: Int, into found: inout [Candidate], s: inout FleetRegistry.Storage
    ) {
        let available = s.pools[pool].available
        if available <= wanted {
            self.walk(pool: pool, until: wanted, into: &found, s: &s)
            return
        }
        var draws = 0
        while found.count < wanted && draws < Self.maxDraws {
            draws += 1
            guard let slot = self.draw(pool: pool, s: &s) else { break }
            if let c = self.evaluate(slot, pool: pool, found: found, s: &s) { found.append(c) }
        }
        if found.count < wanted { self.walk(pool: pool, until: wanted, into: &found, s: &s) }
    }

    /// Probes up to `probes` cars from the least-loaded bucket up: a bucket no larger than what
    /// is still wanted is taken whole, a larger one is sampled.
    private mutating func probeLeastLoadedFirst(
        _ probes: Int, pool: Int, into found: inout [Candidate], s: inout FleetRegistry.Storage
    ) {
        var draws = 0
        for b in s.pools[pool].buckets.indices {
            let count = s.pools[pool].buckets[b].count
            guard count > 0 else { continue }
            if count <= probes - found.count {
                for slot in s.pools[pool].buckets[b] {
                    if let c = self.evaluate(slot, pool: pool, found: found, s: &s) { found.append(c) }
                }
            } else {
                let goal = min(probes, found.count + count)
                let bucket = s.pools[pool].buckets[b]
                while found.count < goal && draws < Self.maxDraws {
                    // Draw a batch, touch every car of it, then evaluate: the cars are far apart in
                    // a large registry, and touching them first lets their cache misses overlap.
                    let batch = min(goal - found.count, Self.maxDraws - draws)
                    var drawn: [Int32] = []
                    drawn.reserveCapacity(batch)
                    for _ in 0..<batch { drawn.append(bucket[Int(s.random.next() % UInt64(count))]) }
                    draws += batch
                    var touched = 0
                    for slot in drawn { touched &+= Int(s.cars[Int(slot)]?.inFlight ?? 0) }
                    if touched == -1 { drawn.removeAll() }  // keeps the touching loop
                    for slot in drawn where found.count < goal {
                        if let c = self.evaluate(slot, pool: pool, found: found, s: &s) { found.append(c) }
                    }
                }
            }
            if found.count >= probes || draws >= Self.maxDraws { break }
        }
        if found.count < min(probes, self.limit) { self.walk(pool: pool, until: self.limit, into: &found, s: &s) }
    }

    /// Round-robin over the pool's members from its cursor, skipping ineligible ones.
    private mutating func walkRoundRobin(pool: Int, into found: inout [Candidate], s: inout FleetRegistry.Storage) {
        let members = s.pools[pool].all
        var cursor = s.pools[pool].cursor
        var steps = 0
        while found.count < self.limit && steps < min(members.count, Self.walkLimit) {
            cursor = (cursor + 1) % members.count
            steps += 1
            let slot = members[cursor]
            guard s.cars[Int(slot)]?.bucket ?? -1 >= 0 else { continue }
            if let c = self.evaluate(slot, pool: pool, found: found, s: &s) {
                if found.isEmpty { s.pools[pool].cursor = cursor }
                found.append(c)
            }
        }
    }

    /// The bounded fallback: the buckets in order, when sampling found too few (a pool that is
    /// almost all backed off, far away or departing).
    private mutating func walk(
        pool: Int, until wanted: Int, into found: inout [Candidate], s: inout FleetRegistry.Storage
    ) {
        var steps = 0
        for bucket in s.pools[pool].buckets {
            for slot in bucket {
                guard found.count < wanted, steps < Self.walkLimit else { return }
                steps += 1
                if let c = self.evaluate(slot, pool: pool, found: found, s: &s) { found.append(c) }
            }
        }
    }
}
