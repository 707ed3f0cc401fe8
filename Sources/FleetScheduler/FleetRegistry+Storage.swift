public import FleetProtocol
import Foundation
import Synchronization

/// How the registry stores the fleet: dense car slots, per-(zone, model) pools bucketed by streams
/// in flight, and the churn estimate — the layout every O(1) update relies on.
extension FleetRegistry {
    /// One model a car offers, with its pool membership and what has been learned. Trivially
    /// copyable (no references), like ``Car``.
    struct Offer {
        /// Index into ``Storage/modelNames``.
        var model: Int32
        var decodeTokensPerSecond: Double
        var prefillTokensPerSecond: Double
        /// The model's context window on this car, tokens, as its hello said (0: not said).
        var contextTokens: Int32
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

        /// The jobs it may hold at once: its capacity, or one while on probation — its last job failed, and
        /// until one succeeds (helper-72: a car that answered 200 and then nothing took a third of the
        /// requests, 15 s each, once its back-off ended: every job it was given at once waited out the
        /// first-token timeout).
        var jobLimit: Int { self.consecutiveFailures > 0 ? 1 : self.capacity }

        /// Whether a job of it has delivered a first token (or any output) since it registered.
        var proven = false

        /// Slow start: a car none of whose jobs has delivered a token yet holds one job while other
        /// capacity (cars or central) can take the rest, as Envoy ramps up a new host (helper-72: a car
        /// that answered 200 and then nothing took a share of the first burst it saw, each job waiting
        /// out the first-token timeout before probation could apply). A soft limit: with nothing else
        /// in the zone, ``FleetRegistry/decide(_:central:excluding:now:limit:)`` lets it take more.
        var isWarmingUp: Bool { !self.proven && self.inFlight >= 1 }

        /// Hedge races lost in a row (``Outcome/lostRaceAfterMilliseconds``), and until when the last
        /// one passes the car over: 0.5 s, doubling with each loss in a row, at most 30 s; a token ends it.
        var racesLost: Int32 = 0
        var passedOverUntil: Double = 0

        /// Whether a decision passes the car over while other capacity can take the request: in its
        /// slow start and holding a job, or just after it lost a hedge race. A soft limit, as slow
        /// start's: with nothing else, ``FleetRegistry/decide(_:central:excluding:now:limit:)`` offers it.
        func isHeldBack(now: Double) -> Bool { self.isWarmingUp || now < self.passedOverUntil }
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
        /// How many of its cars said each context window (0: said none): a few distinct values.
        var windows: [Int32: Int32] = [:]
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
}
