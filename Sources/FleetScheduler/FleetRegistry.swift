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
    /// One model a car offers, with its pool membership and what has been learned. Trivially
    /// copyable (no references), like ``Car``.
    struct Offer {
        /// Index into ``Storage/modelNames``.
        var model: Int32
        var decodeTokensPerSecond: Double
        var prefillTokensPerSecond: Double
        var pool: Int32
        /// Position in the pool's `all` array and in its current bucket.
        var allPosition: Int32 = -1
        var bucketPosition: Int32 = -1
        var learned = LearnedRates()
    }

    /// What decisions read about a car. Trivially copyable — no strings, no arrays — so probing
    /// a car costs one or two cache lines and no reference counting; what only the admin API and
    /// logs need (ids, region, the models' names) lives in ``Storage/descriptors``.
    struct Car {
        /// Index into ``Storage/zoneNames``.
        var zone: Int32
        var hardware: HardwareClass
        var slots: Int
        /// Slots plus the car's own queue.
        var capacity: Int
        var onlyWhilePlugged: Bool
        var minChargePercent: Int
        var state: VehicleState
        var inFlight: Int32 = 0
        /// The bucket the car is in (= inFlight when available), or -1.
        var bucket: Int32 = -1
        var draining = false
        var consecutiveFailures: Int32 = 0
        var backoffUntil: Double = 0
        /// Absolute time the car announced it leaves; infinity when unknown.
        var departsAt: Double = .infinity
        var rtt = RTTEstimate()
        var peak = PeakEWMA()
        /// EWMA of job durations on this car, seconds (0 until one finishes).
        var meanJobSeconds: Double = 0
        /// The first model inline; a car with more keeps the rest in ``Storage/extraOffers``.
        var offerCount: Int
        var primary: Offer
        /// Prefix-cache affinity: whether its engine reuses prefixes (the hello did not say it keeps
        /// none), the epoch its prefixes were recorded under (bumped when its runtime reports a
        /// cache reset), the last reset count reported, and the learned chance a held prefix is a hit.
        var cachesPrefixes = true
        var cacheEpoch: UInt32 = 0
        var cacheResets = -1
        var hits = HitEstimate(prior: 0.5)
    }

    struct Pool {
        let zone: String
        let model: String
        var all: [Int32] = []
        var buckets: [[Int32]] = []
        var available = 0
        var cursor = 0
        /// Which cars (and central) served which conversation prefixes; made at first use.
        var prefixes: PrefixCacheMap?
    }

    struct PoolKey: Hashable {
        var zone: String
        var model: String
    }

    struct Storage {
        var cars: [Car?] = []
        var descriptors: [CarDescriptor?] = []
        /// Offers beyond a car's first, by slot (rare: most cars run one model).
        var extraOffers: [Int: [Offer]] = [:]
        /// The generation last issued per slot, so a stale id never matches the next car in it.
        var generations: [UInt32] = []
        var freeSlots: [Int32] = []
        var byVehicle: [String: CarID] = [:]
        var poolIndex: [PoolKey: Int32] = [:]
        var pools: [Pool] = []
        var zoneIndex: [String: Int32] = [:]
        var zoneNames: [String] = []
        var modelIndex: [String: Int32] = [:]
        var modelNames: [String] = []
        /// Issue #18 row 8: pools and model names no car uses any more are recycled, so a car that
        /// reconnects with new model names cannot grow the registry (offers per model, free slots).
        var modelRefs: [Int32] = []
        var freeModels: [Int32] = []
        var freePools: [Int32] = []
        var carsByRegion: [String: Int] = [:]
        var count = 0
        var random: SplitMix64
        var churn = ChurnEstimate()

        func car(_ id: CarID) -> Car? {
            guard id.slot < self.cars.count, self.generations[id.slot] == id.generation else { return nil }
            return self.cars[id.slot]
        }

        func offer(_ slot: Int, _ index: Int) -> Offer {
            index == 0 ? self.cars[slot]!.primary : self.extraOffers[slot]![index - 1]
        }

        mutating func setOffer(_ slot: Int, _ index: Int, _ offer: Offer) {
            if index == 0 { self.cars[slot]!.primary = offer } else { self.extraOffers[slot]![index - 1] = offer }
        }

        /// The index of the car's offer in `pool`, or of `model`.
        func offerIndex(_ slot: Int, pool: Int32) -> Int? {
            guard let car = self.cars[slot] else { return nil }
            if car.primary.pool == pool { return 0 }
            guard car.offerCount > 1 else { return nil }
            return self.extraOffers[slot]!.firstIndex { $0.pool == pool }.map { $0 + 1 }
        }

        func offerIndex(_ slot: Int, model: Int32) -> Int? {
            guard let car = self.cars[slot] else { return nil }
            if car.primary.model == model { return 0 }
            guard car.offerCount > 1 else { return nil }
            return self.extraOffers[slot]!.firstIndex { $0.model == model }.map { $0 + 1 }
        }

        mutating func intern(zone: String) -> Int32 {
            if let index = self.zoneIndex[zone] { return index }
            self.zoneNames.append(zone)
            self.zoneIndex[zone] = Int32(self.zoneNames.count - 1)
            return Int32(self.zoneNames.count - 1)
        }

        mutating func intern(model: String) -> Int32 {
            if let index = self.modelIndex[model] { return index }
            let index: Int32
            if let free = self.freeModels.popLast() {
                index = free
                self.modelNames[Int(index)] = model
            } else {
                index = Int32(self.modelNames.count)
                self.modelNames.append(model)
                self.modelRefs.append(0)
            }
            self.modelIndex[model] = index
            return index
        }

        /// A pool for `key`, reusing a freed one.
        mutating func makePool(_ key: PoolKey) -> Int32 {
            let pool = Pool(zone: key.zone, model: key.model)
            let index: Int32
            if let free = self.freePools.popLast() {
                index = free
                self.pools[Int(index)] = pool
            } else {
                index = Int32(self.pools.count)
                self.pools.append(pool)
            }
            self.poolIndex[key] = index
            return index
        }

        /// Forgets an offer's pool when it has no car left, and its model when no offer names it.
        mutating func release(_ offer: Offer) {
            let pool = Int(offer.pool)
            if self.pools[pool].all.isEmpty {
                self.poolIndex.removeValue(forKey: PoolKey(zone: self.pools[pool].zone, model: self.pools[pool].model))
                self.pools[pool] = Pool(zone: "", model: "")
                self.freePools.append(offer.pool)
            }
            let model = Int(offer.model)
            self.modelRefs[model] -= 1
            if self.modelRefs[model] == 0 {
                self.modelIndex.removeValue(forKey: self.modelNames[model])
                self.modelNames[model] = ""
                self.freeModels.append(offer.model)
            }
        }
    }

    /// Unannounced departures per car-second, decayed so it follows the fleet's current churn.
    struct ChurnEstimate {
        var departures: Double = 0
        var carSeconds: Double = 0
        var stamp: Double = 0

        mutating func advance(to now: Double, cars: Int) {
            guard now > self.stamp else { return }
            self.carSeconds += Double(cars) * (now - self.stamp)
            self.stamp = now
            // Half-life of about 30 minutes of fleet time.
            if self.carSeconds > Double(max(cars, 1)) * 1_800 {
                self.carSeconds *= 0.5
                self.departures *= 0.5
            }
        }

        var hazard: Double { self.carSeconds > 0 ? self.departures / self.carSeconds : 0 }
    }

    /// Candidates the `predictive` policy probes per decision (16 by default).
    public let probes: Int

    private let storage: Mutex<Storage>
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
                    pool: pool)
                offer.allPosition = Int32(s.pools[Int(pool)].all.count)
                s.pools[Int(pool)].all.append(Int32(slot))
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
                    s.descriptors[id.slot]!.models[d] = ModelOffer(
                        id: model.id, decodeTokensPerSecond: offer.decodeTokensPerSecond,
                        prefillTokensPerSecond: offer.prefillTokensPerSecond)
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

    // MARK: Decisions

    /// Decides where a request goes: a short ranked list of cars and possibly central.
    /// - Parameters:
    ///   - request: what the scheduler may know about the request.
    ///   - central: central capacity in the request's zone, if any.
    ///   - excluding: cars already tried for this request.
    ///   - now: seconds on the caller's clock.
    ///   - limit: cars in the list at most.
    public func decide(
        _ request: RequestProfile, central: CentralOption? = nil, excluding: [CarID] = [], now: Double, limit: Int = 3
    ) -> Decision {
        var decision = self.storage.withLock { s in
            var selector = Selector(registry: self, request: request, excluding: excluding, now: now, limit: limit)
            return selector.select(in: &s)
        }
        guard var central, central.hasRoom else { return decision }
        if central.cachedPrefillMillisecondsPerToken > 0, self.affinity.enabled, !request.prefixes.isEmpty {
            let held = self.storage.withLock { s in Self.centralHeldTokens(request, now: now, in: &s) }
            let credit =
                self.affinity.centralHitProbability * Double(min(held, max(0, request.promptTokens - 1)))
                * central.cachedPrefillMillisecondsPerToken
            central.predictedTTFTMilliseconds = max(1, central.predictedTTFTMilliseconds - credit)
        }
        let centralChoice = Choice(
            route: .central, predictedTTFTMilliseconds: central.predictedTTFTMilliseconds,
            predictedTPOTMilliseconds: central.predictedTPOTMilliseconds, score: central.predictedTTFTMilliseconds,
            advertisedTTFTMilliseconds: central.predictedTTFTMilliseconds)
        guard let best = decision.choices.first else {
            decision.choices = [centralChoice]
            return decision
        }
        if Self.spills(
            to: central, from: best, request: request,
            byPrediction: self.policy == .predictive && self.predictor.centralByPrediction)
        {
            decision.choices.insert(centralChoice, at: 0)
        } else {
            decision.choices.append(centralChoice)
        }
        return decision
    }

    /// Whether central goes before the policy's best car.
    ///
    /// One rule for every policy, so central capacity is shared out the same way whatever
    /// chooses the car: central first when the chosen car is not expected, at its advertised
    /// rates, to deliver the first token within the objective (RTT + queue wait + prompt ÷
    /// advertised prefill) and central is expected sooner. On top of it, `predictive` also puts
    /// central first when its own prediction (learned slowdowns, doubt, the time-per-token
    /// objective) says the car misses an objective that central meets. Central with no room is
    /// never chosen; with no car, central is the only choice.
    static func spills(to central: CentralOption, from best: Choice, request: RequestProfile, byPrediction: Bool)
        -> Bool
    {
        if best.advertisedTTFTMilliseconds > request.ttftObjectiveMilliseconds
            && central.predictedTTFTMilliseconds < best.advertisedTTFTMilliseconds
        {
            return true
        }
        guard byPrediction else { return false }
        let carMisses =
            best.predictedTTFTMilliseconds > request.ttftObjectiveMilliseconds
            || best.predictedTPOTMilliseconds > request.tpotObjectiveMilliseconds
        let centralMeets =
            central.predictedTTFTMilliseconds <= request.ttftObjectiveMilliseconds
            && central.predictedTPOTMilliseconds <= request.tpotObjectiveMilliseconds
        return carMisses && centralMeets
    }

    /// Tokens of the request's longest prefix central served, within the TTL.
    private static func centralHeldTokens(_ request: RequestProfile, now: Double, in s: inout Storage) -> Int {
        guard let pool = s.poolIndex[PoolKey(zone: request.zone, model: request.model)],
            s.pools[Int(pool)].prefixes != nil
        else { return 0 }
        let held = s.pools[Int(pool)].prefixes!.lookup(request.prefixes, now: now, limit: 8)
        return Int(held.first { $0.holder.id == PrefixCacheMap.central }?.tokens ?? 0)
    }

    /// Records that central served a request's whole prompt (prefix-cache affinity for central
    /// endpoints whose runtime caches prefixes). Call when its first token arrived.
    public func recordCentral(_ request: RequestProfile, now: Double) {
        guard self.affinity.enabled, let chunk = request.prefixes.last else { return }
        self.storage.withLock { s in
            guard let pool = s.poolIndex[PoolKey(zone: request.zone, model: request.model)] else { return }
            self.record(chunk, holder: .init(id: PrefixCacheMap.central, epoch: 0), pool: Int(pool), now: now, in: &s)
        }
    }

    private func record(
        _ chunk: PrefixChunk, holder: PrefixCacheMap.Holder, pool: Int, now: Double, in s: inout Storage
    ) {
        if s.pools[pool].prefixes == nil {
            s.pools[pool].prefixes = PrefixCacheMap(
                capacity: self.affinity.entriesPerPool, ttl: self.affinity.ttlSeconds,
                holdersPerEntry: self.affinity.holdersPerEntry)
        }
        s.pools[pool].prefixes!.record(chunk, holder: holder, now: now)
        s.pools[pool].prefixes!.expire(now: now, budget: 4)
    }

    /// Takes a slot on a car the decision chose, for one attempt. The lease carries the choice's
    /// prediction: the predictor does not run again (one decision, one prediction, one lease).
    ///
    /// - Parameters:
    ///   - choice: a car choice from ``decide(_:central:excluding:now:limit:)`` (or ``evaluate(_:for:now:)``).
    ///   - request: the request it was decided for (its zone and model are checked again).
    ///   - now: seconds on the caller's clock.
    /// - Returns: the lease, to be handed to ``finish(_:_:now:)`` exactly once; nil for a central
    ///   choice, or when the car has no room, is gone, or (a race with a telemetry update) is no
    ///   longer eligible.
    public func acquire(_ choice: Choice, for request: RequestProfile, now: Double) -> Lease? {
        guard let id = choice.car else { return nil }
        return self.storage.withLock { s in
            guard var car = s.car(id), Int(car.inFlight) < car.capacity, !car.draining,
                s.zoneIndex[request.zone] == car.zone, let model = s.modelIndex[request.model],
                s.offerIndex(id.slot, model: model) != nil
            else { return nil }
            car.inFlight += 1
            s.cars[id.slot] = car
            self.reindex(id.slot, in: &s)
            let remembers = self.affinity.enabled && car.cachesPrefixes
            return Lease(
                car: id, model: request.model, startedAt: now, concurrency: Int(car.inFlight),
                promptTokens: request.promptTokens, predictedTTFTMilliseconds: choice.predictedTTFTMilliseconds,
                predictedTPOTMilliseconds: choice.predictedTPOTMilliseconds,
                predictedRTTMilliseconds: choice.predictedRTTMilliseconds,
                predictedQueueMilliseconds: choice.predictedQueueMilliseconds,
                prefix: remembers ? request.prefixes.last : nil,
                cachedPrefixTokens: remembers ? choice.cachedPrefixTokens : 0)
        }
    }

    /// One car as a decision would see it for `request`, without the per-request filters: for
    /// tests, benchmarks and the admin API, which address a car directly.
    /// - Returns: a car choice for ``acquire(_:for:now:)``; nil when the car is gone or does not
    ///   serve the request's model in its zone.
    public func evaluate(_ id: CarID, for request: RequestProfile, now: Double) -> Choice? {
        self.storage.withLock { s in
            guard let car = s.car(id), s.zoneIndex[request.zone] == car.zone,
                let model = s.modelIndex[request.model], let index = s.offerIndex(id.slot, model: model)
            else { return nil }
            let p = self.predictor.predict(
                car, offer: s.offer(id.slot, index), request: request, churnHazard: s.churn.hazard, now: now)
            return Choice(
                route: .car(id), predictedTTFTMilliseconds: p.ttft, predictedTPOTMilliseconds: p.tpot, score: p.score,
                predictedRTTMilliseconds: p.rtt, predictedQueueMilliseconds: p.queue,
                advertisedTTFTMilliseconds: p.advertisedTTFT)
        }
    }

    /// Returns a lease's slot with its attempt's outcome — the one place an outcome is reported —
    /// and learns from it: the compute part of the observed
    /// time to first token against the advertised prefill rate, the observed time per token against
    /// the class curve at the job's concurrency, the job's duration, and Finagle's peak EWMA. A
    /// failure backs the car off exponentially, so a car that fails fast does not look idle and
    /// attract more work.
    public func finish(_ lease: Lease, _ outcome: Outcome, now: Double) {
        self.storage.withLock { s in
            guard var car = s.car(lease.car) else { return }
            car.inFlight = max(0, car.inFlight - 1)
            if outcome.succeeded {
                car.consecutiveFailures = 0
            } else {
                car.consecutiveFailures += 1
                car.backoffUntil = now + min(30, 0.25 * Double(1 << min(Int(car.consecutiveFailures), 7)))
            }
            if self.predictor.learns, let model = s.modelIndex[lease.model],
                let index = s.offerIndex(lease.car.slot, model: model)
            {
                var offer = index == 0 ? car.primary : s.offer(lease.car.slot, index)
                let rate = self.predictor.learningRate
                if let ttft = outcome.ttftMilliseconds {
                    let prompt = Double(max(1, outcome.promptTokens ?? lease.promptTokens))
                    let sharing =
                        1 + self.predictor.prefillContention * Double(min(lease.concurrency - 1, car.slots))
                    let advertised = 1_000 * prompt / max(1, offer.prefillTokensPerSecond) * sharing
                    // What the RTT and the queue do not explain is the car's prefill (at least 10 % of advertised).
                    let compute = max(
                        0.1 * advertised,
                        ttft - lease.predictedRTTMilliseconds + car.rtt.deviation
                            - lease.predictedQueueMilliseconds)
                    var expected = advertised
                    if lease.cachedPrefixTokens > 0 {
                        // A held prefix: a hit if the prefill looks like the uncached rest's, a miss if
                        // like the whole prompt's (at the learned slowdown); the slowdown learns from
                        // the prompt the car was judged to have prefilled. Too close to call: no verdict.
                        let rest = advertised * max(1, prompt - Double(lease.cachedPrefixTokens)) / prompt
                        if advertised / rest >= 1.5 {
                            let slowdown = offer.learned.prefillSlowdown
                            let hit = abs(log(compute / (rest * slowdown))) < abs(log(compute / (advertised * slowdown)))
                            car.hits.observe(hit: hit, learningRate: self.affinity.hitLearningRate)
                            if hit { expected = rest }
                        } else {
                            expected = advertised - car.hits.probability * (advertised - rest)
                        }
                    }
                    offer.learned.observePrefill(compute / expected, learningRate: rate)
                    car.peak.observe(ttft, now: now)
                } else if !outcome.succeeded {
                    car.peak.observe(max(car.peak.cost * 2, 1_000), now: now)
                }
                if let tpot = outcome.tpotMilliseconds, outcome.outputTokens >= 2 {
                    let concurrency = min(lease.concurrency, car.slots)
                    let advertised =
                        1_000 / max(0.1, offer.decodeRate(activeStreams: concurrency, hardware: car.hardware))
                    offer.learned.observeDecode(tpot / advertised, learningRate: rate)
                }
                if index == 0 { car.primary = offer } else { s.setOffer(lease.car.slot, index, offer) }
            }
            if let chunk = lease.prefix, outcome.ttftMilliseconds != nil, let model = s.modelIndex[lease.model],
                let index = s.offerIndex(lease.car.slot, model: model)
            {
                // It prefilled the whole prompt: its runtime now holds it (until evicted).
                let pool = Int(index == 0 ? car.primary.pool : s.offer(lease.car.slot, index).pool)
                self.record(
                    chunk, holder: .init(id: lease.car.rawValue, epoch: car.cacheEpoch), pool: pool, now: now, in: &s)
            }
            if outcome.succeeded {
                let seconds = max(0, now - lease.startedAt)
                car.meanJobSeconds = car.meanJobSeconds == 0 ? seconds : 0.8 * car.meanJobSeconds + 0.2 * seconds
            }
            s.cars[lease.car.slot] = car
            self.reindex(lease.car.slot, in: &s)
        }
    }

    // MARK: Index maintenance

    /// Puts the car in the bucket its state calls for (or none).
    private func reindex(_ slot: Int, in s: inout Storage) {
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

    // MARK: Reading

    /// Ranked eligible cars for a request, best first (a convenience over ``decide(_:central:excluding:now:limit:)``).
    public func candidates(model: String, zone: String, excluding: [CarID] = [], now: Double, limit: Int = 4)
        -> [CarSnapshot]
    {
        let request = RequestProfile(model: model, zone: zone, promptTokens: 100)
        return self.decide(request, excluding: excluding, now: now, limit: limit).cars.compactMap(self.snapshot)
    }

    /// A car's descriptor, without the snapshot's learned rates (what a request needs for its headers).
    public func descriptor(_ id: CarID) -> CarDescriptor? {
        self.storage.withLock { s in s.car(id) == nil ? nil : s.descriptors[id.slot] }
    }

    /// A car's snapshot.
    public func snapshot(_ id: CarID) -> CarSnapshot? {
        self.storage.withLock { s in s.car(id).map { _ in Self.snapshot(id: id, in: s) } }
    }

    /// Every car.
    public func all() -> [CarSnapshot] {
        self.storage.withLock { s in
            s.cars.indices.compactMap { slot in
                s.cars[slot].map { _ in Self.snapshot(id: CarID(slot: slot, generation: s.generations[slot]), in: s) }
            }
        }
    }

    /// Whether any connected car offers `model` (in `zone`, when given): O(1), for the request path.
    public func serves(model: String, zone: String? = nil) -> Bool {
        self.storage.withLock { s in
            if let zone {
                return s.poolIndex[PoolKey(zone: zone, model: model)].map { !s.pools[Int($0)].all.isEmpty } ?? false
            }
            return s.modelIndex[model].map { s.modelRefs[Int($0)] > 0 } ?? false
        }
    }

    /// Models served by connected cars, optionally only in one zone — read from the pools, not the fleet.
    public func models(zone: String? = nil) -> Set<String> {
        self.storage.withLock { s in
            Set(s.pools.lazy.filter { !$0.all.isEmpty && (zone == nil || $0.zone == zone) }.map(\.model))
        }
    }

    /// Cars connected in a region.
    public func count(region: String) -> Int {
        self.storage.withLock { $0.carsByRegion[region] ?? 0 }
    }

    /// Number of cars connected.
    public var count: Int { self.storage.withLock { $0.count } }

    /// Pools and model names held, live or free for reuse: bounded by what connected cars offer at
    /// once, never by how many names have ever been seen (tests).
    package var retained: (pools: Int, models: Int) {
        self.storage.withLock { ($0.pools.count, $0.modelNames.count) }
    }

    /// Available cars (room for a job, owner's policy met, not draining) in a (zone, model) pool.
    public func availableCount(model: String, zone: String) -> Int {
        self.storage.withLock { s in
            s.poolIndex[PoolKey(zone: zone, model: model)].map { s.pools[Int($0)].available } ?? 0
        }
    }

    /// Per (zone, model) pool: available cars whose primary tunnel is here and their free slots,
    /// and the free slots of cars reachable here only through a secondary tunnel (issue #21's
    /// capacity digest). O(cars in the pools); called about once a second, never on the request path.
    public func poolCapacity()
        -> [(zone: String, model: String, available: Int, freeSlots: Int, secondaryFreeSlots: Int)]
    {
        self.storage.withLock { s in
            s.pools.compactMap { pool in
                guard !pool.all.isEmpty else { return nil }
                var free = 0, available = 0, secondary = 0
                for slot in pool.all {
                    guard let car = s.cars[Int(slot)], !car.draining, car.bucket >= 0 else { continue }
                    if s.descriptors[Int(slot)]?.primary ?? true {
                        free += max(0, car.slots - Int(car.inFlight))
                        available += 1
                    } else {
                        secondary += max(0, car.slots - Int(car.inFlight))
                    }
                }
                return (pool.zone, pool.model, available, free, secondary)
            }
        }
    }

    /// The churn hazard the predictor charges: unannounced departures per car-second.
    public var churnHazard: Double { self.storage.withLock { $0.churn.hazard } }

    static func snapshot(id: CarID, in s: Storage) -> CarSnapshot {
        let car = s.cars[id.slot]!
        let learned = (0..<car.offerCount).map { s.offer(id.slot, $0) }.map {
            (s.modelNames[Int($0.model)], $0.learned)
        }
        return CarSnapshot(
            id: id, descriptor: s.descriptors[id.slot]!, state: car.state, inFlight: Int(car.inFlight),
            rttMilliseconds: car.rtt.samples > 0 ? car.rtt.smoothed : nil,
            rttDeviationMilliseconds: car.rtt.samples > 0 ? car.rtt.deviation : nil, draining: car.draining,
            consecutiveFailures: Int(car.consecutiveFailures),
            learned: Dictionary(learned, uniquingKeysWith: { a, _ in a }),
            prefixHitProbability: car.cachesPrefixes ? car.hits.probability : 0)
    }
}
