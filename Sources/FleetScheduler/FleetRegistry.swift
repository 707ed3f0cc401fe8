public import FleetProtocol
import Foundation
import Synchronization

/// The registry of connected, verified cars: the scheduler's view of the fleet.
///
/// Pure and synchronous (one `Mutex`, no sockets), so the simulator drives the same code the
/// gateway runs. Cars live in a dense array addressed by ``CarID`` (no hashing on the hot path).
/// Every update — telemetry, PING, slot taken or returned, outcome — is O(1): it touches the
/// car and moves it between the buckets of its (zone, model) pools.
///
/// ## Selection without scanning the fleet
/// Each (zone, model) pool keeps its *available* cars (not draining, the owner's policy met,
/// room for one more job) in buckets by streams in flight. A decision looks only at the pool of
/// the request's zone — so the zone is a hard filter by construction — and evaluates a small
/// candidate set drawn from the buckets (see ``SchedulingPolicy``):
/// `predictive` probes ``probes`` cars from the least-loaded buckets up (Prequal-style probing,
/// with the predictor as the probe), the P2C policies draw two uniformly, `least-outstanding`
/// takes the lowest non-empty bucket. Per-request checks that change with time (back-off,
/// RTT, departure, the cars already tried) are applied to each candidate drawn. The cost of a
/// decision therefore depends on the probe count, not the fleet.
public final class FleetRegistry: Sendable {
    /// Candidates the `predictive` policy probes per decision (16 by default).
    public let probes: Int

    /// Everything mutable, behind one lock (internal so the reading extension shares it).
    let storage: Mutex<Storage>
    /// The rules applied before any policy.
    public let eligibility: Eligibility
    /// How decisions choose.
    public let policy: SchedulingPolicy
    /// The predictor behind `predictive` (and the predictions reported for every policy).
    public let predictor: LatencyPredictor
    /// Prefix-cache affinity (issue #14): a term in `predictive`'s score.
    public let affinity: PrefixAffinity

    public init(
        policy: SchedulingPolicy = .predictive, eligibility: Eligibility = Eligibility(),
        predictor: LatencyPredictor = LatencyPredictor(), probes: Int = 16, seed: UInt64 = 0x5EED,
        affinity: PrefixAffinity = PrefixAffinity()
    ) {
        self.affinity = affinity
        self.probes = max(1, probes)
        self.policy = policy
        self.eligibility = eligibility
        self.predictor = predictor
        self.storage = Mutex(Storage(random: SplitMix64(seed: seed)))
    }

    // MARK: Membership and telemetry

    /// Registers a verified car. A car already registered under the same vehicle id is replaced;
    /// its id is returned so the caller can close the old tunnel.
    ///
    /// - Precondition: `descriptor.models` is not empty. The gateway guarantees it: a hello without
    ///   models is refused before it gets here (``FleetStatus/problem(with:requireOne:)``).
    public func register(_ descriptor: CarDescriptor, state: VehicleState, now: Double = 0)
        -> (id: CarID, replaced: CarID?)
    {
        precondition(!descriptor.models.isEmpty, "Internal inconsistency: a car registered without models")
        return self.storage.withLock { s in
            let replaced = s.byVehicle[descriptor.vehicleID]
            if let replaced { Self.remove(replaced, announced: true, now: now, in: &s) }
            s.churn.advance(to: now, cars: s.count)
            let slot: Int
            if let free = s.freeSlots.popLast() {
                slot = Int(free)
            } else {
                slot = s.cars.count
                s.cars.append(nil)
                s.descriptors.append(nil)
                s.generations.append(0)
            }
            s.generations[slot] &+= 1
            let generation = s.generations[slot]
            let zone = s.intern(zone: descriptor.zone)
            var offers: [Offer] = []
            for model in descriptor.models {
                let modelID = s.intern(model: model.id)
                guard !offers.contains(where: { $0.model == modelID }) else { continue }
                let key = PoolKey(zone: descriptor.zone, model: model.id)
                let pool = s.poolIndex[key] ?? s.makePool(key)
                s.modelRefs[Int(modelID)] += 1
                let rates = Self.boundedRates(model, hardware: descriptor.hardware)
                var offer = Offer(
                    model: modelID, decodeTokensPerSecond: rates.decode, prefillTokensPerSecond: rates.prefill,
                    contextTokens: Int32(clamping: model.contextTokens ?? 0), pool: pool)
                offer.allPosition = Int32(s.pools[Int(pool)].all.count)
                s.pools[Int(pool)].all.append(Int32(slot))
                s.pools[Int(pool)].windows[offer.contextTokens, default: 0] += 1
                offers.append(offer)
            }
            // Non-empty: the precondition above, and duplicates are skipped only after the first.
            let primary = offers[0]
            var car = Car(
                zone: zone, hardware: descriptor.hardware, slots: max(1, descriptor.slots),
                capacity: max(1, descriptor.slots) + max(0, descriptor.queueDepth),
                onlyWhilePlugged: descriptor.policy.onlyWhilePlugged,
                minChargePercent: descriptor.policy.minChargePercent,
                state: state, offerCount: offers.count, primary: primary)
            car.departsAt = Self.departure(state, now: now)
            car.cachesPrefixes = (descriptor.promptCache?.sequences ?? 1) > 0
            car.cacheResets = state.cacheResets ?? -1
            car.hits = HitEstimate(
                prior: descriptor.promptCache == nil
                    ? self.affinity.priorHitProbability : self.affinity.declaredHitProbability)
            s.cars[slot] = car
            s.descriptors[slot] = descriptor
            if offers.count > 1 { s.extraOffers[slot] = Array(offers.dropFirst()) }
            let id = CarID(slot: slot, generation: generation)
            s.byVehicle[descriptor.vehicleID] = id
            s.carsByRegion[descriptor.region, default: 0] += 1
            s.count += 1
            self.reindex(slot, in: &s)
            return (id, replaced)
        }
    }

    /// Removes a car (its tunnel closed). A car that leaves without having announced it (no
    /// drain, no departure notice) counts towards the churn hazard the predictor charges.
    public func remove(_ id: CarID, now: Double = 0) {
        self.storage.withLock { s in
            guard let car = s.car(id) else { return }
            let announced = car.draining || car.departsAt <= now + 1
            Self.remove(id, announced: announced, now: now, in: &s)
        }
    }

    private static func remove(_ id: CarID, announced: Bool, now: Double, in s: inout Storage) {
        guard let car = s.car(id), let descriptor = s.descriptors[id.slot] else { return }
        s.churn.advance(to: now, cars: s.count)
        if !announced { s.churn.departures += 1 }
        Self.moveBucket(id.slot, to: -1, in: &s)
        for index in 0..<car.offerCount {
            let offer = s.offer(id.slot, index)
            let pool = Int(offer.pool)
            let position = Int(offer.allPosition)
            let said = s.pools[pool].windows[offer.contextTokens, default: 1]
            s.pools[pool].windows[offer.contextTokens] = said > 1 ? said - 1 : nil
            let last = s.pools[pool].all.removeLast()
            if position < s.pools[pool].all.count {
                s.pools[pool].all[position] = last
                Self.setPosition(of: Int(last), pool: offer.pool, all: Int32(position), in: &s)
            }
            s.release(offer)
        }
        if s.byVehicle[descriptor.vehicleID] == id { s.byVehicle.removeValue(forKey: descriptor.vehicleID) }
        s.carsByRegion[descriptor.region, default: 1] -= 1
        s.count -= 1
        s.cars[id.slot] = nil
        s.descriptors[id.slot] = nil
        s.extraOffers.removeValue(forKey: id.slot)
        s.freeSlots.append(Int32(id.slot))
    }

    /// Applies a telemetry update.
    public func update(_ id: CarID, state: VehicleState, now: Double = 0) {
        self.storage.withLock { s in
            guard var car = s.car(id) else { return }
            car.state = state
            car.departsAt = Self.departure(state, now: now)
            if let resets = state.cacheResets, resets != car.cacheResets {
                // Its runtime lost its prompt cache: every prefix recorded for it dies at once.
                if car.cacheResets >= 0 { car.cacheEpoch &+= 1 }
                car.cacheResets = resets
            }
            s.cars[id.slot] = car
            self.reindex(id.slot, in: &s)
        }
    }

    /// Replaces the rates a car advertises (the agent's own measurement of its engine).
    public func updateRates(_ id: CarID, models: [ModelOffer]) {
        self.storage.withLock { s in
            guard s.car(id) != nil else { return }
            for model in models {
                guard let modelID = s.modelIndex[model.id], let index = s.offerIndex(id.slot, model: modelID) else {
                    continue
                }
                var offer = s.offer(id.slot, index)
                let rates = Self.boundedRates(model, hardware: s.cars[id.slot]!.hardware)
                if model.decodeTokensPerSecond > 0 { offer.decodeTokensPerSecond = rates.decode }
                if model.prefillTokensPerSecond > 0 { offer.prefillTokensPerSecond = rates.prefill }
                s.setOffer(id.slot, index, offer)
                if let d = s.descriptors[id.slot]?.models.firstIndex(where: { $0.id == model.id }) {
                    s.descriptors[id.slot]!.models[d].decodeTokensPerSecond = offer.decodeTokensPerSecond
                    s.descriptors[id.slot]!.models[d].prefillTokensPerSecond = offer.prefillTokensPerSecond
                }
            }
        }
    }

    /// Records a PING round trip.
    public func recordRTT(_ id: CarID, milliseconds: Double) {
        self.storage.withLock { s in
            guard s.car(id) != nil else { return }
            s.cars[id.slot]!.rtt.observe(milliseconds)
        }
    }

    /// Issue #21: whether this replica holds the car's primary tunnel changed (the car's primary
    /// tunnel to another replica went, and this one took over): it counts in the capacity digest.
    public func setPrimary(_ id: CarID, _ primary: Bool) {
        self.storage.withLock { s in
            guard s.car(id) != nil else { return }
            s.descriptors[id.slot]?.primary = primary
        }
    }

    /// Issue #21: where the car's other tunnels are, as it said (a hello's or state's `elsewhere`).
    public func setElsewhere(_ id: CarID, _ elsewhere: [String]) {
        self.storage.withLock { s in
            guard s.car(id) != nil else { return }
            s.descriptors[id.slot]?.elsewhere = elsewhere
        }
    }

    /// Stops routing new work to the car.
    public func setDraining(_ id: CarID) {
        self.storage.withLock { s in
            guard s.car(id) != nil else { return }
            s.cars[id.slot]!.draining = true
            self.reindex(id.slot, in: &s)
        }
    }

    /// The most a car may advertise, as a multiple of its hardware class's profile: a smaller
    /// model runs faster than the class's reference model, but no car is believed beyond this.
    /// What the car really does is then learned from its outcomes and replaces the claim.
    public static let advertisedRateBound = 4.0

    /// A car's advertised rates, bounded by its hardware class (``advertisedRateBound``); a
    /// missing or non-positive rate becomes the class's profile.
    static func boundedRates(_ model: ModelOffer, hardware: HardwareClass) -> (decode: Double, prefill: Double) {
        let profile = HardwareProfile.of(hardware)
        func bound(_ value: Double, _ reference: Double) -> Double {
            guard value.isFinite, value > 0 else { return reference }
            return min(value, reference * Self.advertisedRateBound)
        }
        return (
            bound(model.decodeTokensPerSecond, profile.decodeTokensPerSecond),
            bound(model.prefillTokensPerSecond, profile.prefillTokensPerSecond)
        )
    }

    private static func departure(_ state: VehicleState, now: Double) -> Double {
        state.departingInSeconds.map { now + Double($0) } ?? .infinity
    }

    // MARK: Index maintenance

    /// Puts the car in the bucket its state calls for (or none).
    func reindex(_ slot: Int, in s: inout Storage) {
        guard let car = s.cars[slot] else { return }
        let target: Int32 = self.eligibility.isAvailable(car) ? car.inFlight : -1
        if target != car.bucket { Self.moveBucket(slot, to: target, in: &s) }
    }

    private static func moveBucket(_ slot: Int, to target: Int32, in s: inout Storage) {
        guard let car = s.cars[slot] else { return }
        let from = car.bucket
        guard from != target else { return }
        for index in 0..<car.offerCount {
            var offer = s.offer(slot, index)
            let pool = Int(offer.pool)
            if from >= 0 {
                let position = Int(offer.bucketPosition)
                let last = s.pools[pool].buckets[Int(from)].removeLast()
                if position < s.pools[pool].buckets[Int(from)].count {
                    s.pools[pool].buckets[Int(from)][position] = last
                    if Int(last) != slot {
                        Self.setPosition(of: Int(last), pool: Int32(pool), bucket: Int32(position), in: &s)
                    }
                }
                s.pools[pool].available -= 1
            }
            if target >= 0 {
                while s.pools[pool].buckets.count <= Int(target) { s.pools[pool].buckets.append([]) }
                offer.bucketPosition = Int32(s.pools[pool].buckets[Int(target)].count)
                s.pools[pool].buckets[Int(target)].append(Int32(slot))
                s.pools[pool].available += 1
            } else {
                offer.bucketPosition = -1
            }
            s.setOffer(slot, index, offer)
        }
        s.cars[slot]!.bucket = target
    }

    private static func setPosition(
        of slot: Int, pool: Int32, all: Int32? = nil, bucket: Int32? = nil, in s: inout Storage
    ) {
        guard let index = s.offerIndex(slot, pool: pool) else { return }
        var offer = s.offer(slot, index)
        if let all { offer.allPosition = all }
        if let bucket { offer.bucketPosition = bucket }
        s.setOffer(slot, index, offer)
    }
}
