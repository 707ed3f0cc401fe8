public import FleetProtocol
import Synchronization

/// A car's index in the registry.
public struct CarID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public var description: String { "car#\(self.rawValue)" }
}

/// What a verified hello establishes about a car; fixed for the life of its tunnel.
public struct CarDescriptor: Sendable, Hashable {
    /// The raw vehicle id. Never shown to clients or written to logs; see ``pseudonym``.
    public var vehicleID: String
    /// The keyed, rotated hash shown as `x-fleet-vehicle`.
    public var pseudonym: String
    /// The region it serves (allowed by its credential).
    public var region: String
    /// The zone of that region.
    public var zone: String
    public var hardware: HardwareClass
    public var models: [ModelOffer]
    public var slots: Int
    public var policy: OwnerPolicy

    public init(
        vehicleID: String, pseudonym: String, region: String, zone: String, hardware: HardwareClass,
        models: [ModelOffer], slots: Int, policy: OwnerPolicy
    ) {
        self.vehicleID = vehicleID
        self.pseudonym = pseudonym
        self.region = region
        self.zone = zone
        self.hardware = hardware
        self.models = models
        self.slots = slots
        self.policy = policy
    }
}

/// A read-only view of one car, for selection results, the admin API and tests.
public struct CarSnapshot: Sendable, Hashable {
    public var id: CarID
    public var descriptor: CarDescriptor
    public var state: VehicleState
    public var inFlight: Int
    public var rttMilliseconds: Double?
    public var draining: Bool
    public var consecutiveFailures: Int
}

/// The registry of connected, verified cars: the scheduler's view of the fleet.
///
/// Pure and synchronous (a `Mutex`, no sockets), so the simulator can drive it. Every update is
/// O(1) amortised. Selection filters by ``Eligibility`` and ranks least-outstanding first, then by
/// RTT; the latency-predictive scorer replaces the ranking (its own issue).
public final class FleetRegistry: Sendable {
    struct Car {
        var descriptor: CarDescriptor
        var state: VehicleState
        var inFlight = 0
        var rtt: Double?
        var draining = false
        var consecutiveFailures = 0
        var backoffUntil: Double = 0
    }

    struct Storage {
        var cars: [Int: Car] = [:]
        var byVehicle: [String: Int] = [:]
        var nextID = 1
        /// Cars by (zone, model): selection samples these pools instead of scanning the fleet.
        var pools: [PoolKey: Pool] = [:]
        var carsByRegion: [String: Int] = [:]
        var random = SplitMix64(seed: 0x5EED)
    }

    struct PoolKey: Hashable {
        var zone: String
        var model: String
    }

    /// A dense array of car ids with O(1) insert and remove (swap with the last), for uniform sampling.
    struct Pool {
        var ids: [Int] = []
        var position: [Int: Int] = [:]

        mutating func insert(_ id: Int) {
            guard self.position[id] == nil else { return }
            self.position[id] = self.ids.count
            self.ids.append(id)
        }

        mutating func remove(_ id: Int) {
            guard let index = self.position.removeValue(forKey: id) else { return }
            let last = self.ids.removeLast()
            if index < self.ids.count {
                self.ids[index] = last
                self.position[last] = index
            }
        }
    }

    /// Pools up to this size are ranked exactly; larger ones are sampled.
    static let exactPoolSize = 64
    /// Cars probed per sampling round; a round that finds too few eligible cars is followed by more.
    static let probesPerRound = 16

    private let storage = Mutex(Storage())
    /// The rules applied before ranking.
    public let eligibility: Eligibility

    public init(eligibility: Eligibility = Eligibility()) {
        self.eligibility = eligibility
    }

    /// Registers a verified car. A car already registered under the same vehicle id is replaced;
    /// its id is returned so the caller can close the old tunnel.
    public func register(_ descriptor: CarDescriptor, state: VehicleState) -> (id: CarID, replaced: CarID?) {
        self.storage.withLock { s in
            let id = s.nextID
            s.nextID += 1
            let replaced = s.byVehicle[descriptor.vehicleID]
            if let replaced, let old = s.cars.removeValue(forKey: replaced) {
                Self.unindex(replaced, old.descriptor, in: &s)
            }
            s.byVehicle[descriptor.vehicleID] = id
            s.cars[id] = Car(descriptor: descriptor, state: state)
            s.carsByRegion[descriptor.region, default: 0] += 1
            for model in descriptor.models {
                s.pools[PoolKey(zone: descriptor.zone, model: model.id), default: Pool()].insert(id)
            }
            return (CarID(id), replaced.map(CarID.init))
        }
    }

    /// Removes a car (its tunnel closed).
    public func remove(_ id: CarID) {
        self.storage.withLock { s in
            guard let car = s.cars.removeValue(forKey: id.rawValue) else { return }
            if s.byVehicle[car.descriptor.vehicleID] == id.rawValue {
                s.byVehicle.removeValue(forKey: car.descriptor.vehicleID)
            }
        }
    }

    /// Applies a telemetry update.
    public func update(_ id: CarID, state: VehicleState) {
        self.storage.withLock { $0.cars[id.rawValue]?.state = state }
    }

    /// Records a PING round trip (smoothed, EWMA α = 0.2).
    public func recordRTT(_ id: CarID, milliseconds: Double) {
        self.storage.withLock { s in
            guard var car = s.cars[id.rawValue] else { return }
            car.rtt = car.rtt.map { 0.8 * $0 + 0.2 * milliseconds } ?? milliseconds
            s.cars[id.rawValue] = car
        }
    }

    /// Stops routing new work to the car.
    public func setDraining(_ id: CarID) {
        self.storage.withLock { $0.cars[id.rawValue]?.draining = true }
    }

    /// Ranked eligible cars for a request, best first, at most `limit`.
    ///
    /// Only the (zone, model) pool is looked at — the zone is a hard filter by construction. A pool
    /// of at most ``exactPoolSize`` cars is ranked exactly; a larger one is sampled in rounds of
    /// ``probesPerRound`` random cars until `limit` eligible ones are found (power-of-d choices,
    /// as Prequal and Finagle's P2C do), falling back to a full scan of the pool only when
    /// sampling finds too few (a pool that is almost all ineligible). The cost of a decision
    /// therefore does not grow with the fleet. Ranking: least outstanding per slot, then RTT.
    /// - Parameters:
    ///   - model: the model requested.
    ///   - zone: the enforced privacy zone: a hard filter.
    ///   - excluding: cars already tried for this request.
    ///   - now: seconds on the caller's clock (for back-off).
    public func candidates(model: String, zone: String, excluding: Set<CarID> = [], now: Double, limit: Int = 4)
        -> [CarSnapshot]
    {
        self.storage.withLock { s in
            guard let pool = s.pools[PoolKey(zone: zone, model: model)], !pool.ids.isEmpty else { return [] }
            var found: [Int: Car] = [:]
            func consider(_ id: Int, _ s: Storage) {
                guard found[id] == nil, !excluding.contains(CarID(id)), let car = s.cars[id],
                    self.eligibility.admits(car, model: model, zone: zone, now: now)
                else { return }
                found[id] = car
            }
            if pool.ids.count <= Self.exactPoolSize {
                for id in pool.ids { consider(id, s) }
            } else {
                var rounds = 0
                while found.count < limit && rounds < 4 {
                    for _ in 0..<Self.probesPerRound {
                        consider(pool.ids[Int(s.random.next() % UInt64(pool.ids.count))], s)
                    }
                    rounds += 1
                }
                if found.count < limit {
                    for id in pool.ids { consider(id, s) }
                }
            }
            let ranked = found.sorted { a, b in
                let la = Double(a.value.inFlight) / Double(max(1, a.value.descriptor.slots))
                let lb = Double(b.value.inFlight) / Double(max(1, b.value.descriptor.slots))
                if la != lb { return la < lb }
                return (a.value.rtt ?? 50, a.key) < (b.value.rtt ?? 50, b.key)
            }
            return ranked.prefix(limit).map { Self.snapshot(id: $0.key, car: $0.value) }
        }
    }

    private static func unindex(_ id: Int, _ descriptor: CarDescriptor, in s: inout Storage) {
        s.carsByRegion[descriptor.region, default: 1] -= 1
        for model in descriptor.models { s.pools[PoolKey(zone: descriptor.zone, model: model.id)]?.remove(id) }
    }

    /// Takes a slot on the car for a job; false when it has none free or is gone.
    public func acquire(_ id: CarID) -> Bool {
        self.storage.withLock { s in
            guard var car = s.cars[id.rawValue], car.inFlight < car.descriptor.slots else { return false }
            car.inFlight += 1
            s.cars[id.rawValue] = car
            return true
        }
    }

    /// Returns a slot with the job's outcome. A failure backs the car off exponentially, so a
    /// car that fails fast does not look idle and attract more work.
    public func release(_ id: CarID, succeeded: Bool, now: Double) {
        self.storage.withLock { s in
            guard var car = s.cars[id.rawValue] else { return }
            car.inFlight = max(0, car.inFlight - 1)
            if succeeded {
                car.consecutiveFailures = 0
            } else {
                car.consecutiveFailures += 1
                car.backoffUntil = now + min(30, 0.25 * Double(1 << min(car.consecutiveFailures, 7)))
            }
            s.cars[id.rawValue] = car
        }
    }

    /// A car's snapshot.
    public func snapshot(_ id: CarID) -> CarSnapshot? {
        self.storage.withLock { s in s.cars[id.rawValue].map { Self.snapshot(id: id.rawValue, car: $0) } }
    }

    /// Every car.
    public func all() -> [CarSnapshot] {
        self.storage.withLock { s in s.cars.map { Self.snapshot(id: $0.key, car: $0.value) } }
    }

    /// Models served by connected cars, optionally only in one zone — read from the pools, not the fleet.
    public func models(zone: String? = nil) -> Set<String> {
        self.storage.withLock { s in
            Set(s.pools.lazy.filter { !$0.value.ids.isEmpty && (zone == nil || $0.key.zone == zone) }.map(\.key.model))
        }
    }

    /// Cars connected in a region.
    public func count(region: String) -> Int {
        self.storage.withLock { $0.carsByRegion[region] ?? 0 }
    }

    /// Number of cars connected.
    public var count: Int { self.storage.withLock { $0.cars.count } }

    static func snapshot(id: Int, car: Car) -> CarSnapshot {
        CarSnapshot(
            id: CarID(id), descriptor: car.descriptor, state: car.state, inFlight: car.inFlight,
            rttMilliseconds: car.rtt, draining: car.draining, consecutiveFailures: car.consecutiveFailures)
    }
}

/// The filters a car must pass before it is ranked (DESIGN.md step 3).
public struct Eligibility: Sendable {
    /// Worst smoothed RTT that still streams well.
    public var maxRTTMilliseconds: Double
    /// A car departing sooner than this is not given new work.
    public var minSecondsBeforeDeparture: Int

    public init(maxRTTMilliseconds: Double = 400, minSecondsBeforeDeparture: Int = 120) {
        self.maxRTTMilliseconds = maxRTTMilliseconds
        self.minSecondsBeforeDeparture = minSecondsBeforeDeparture
    }

    func admits(_ car: FleetRegistry.Car, model: String, zone: String, now: Double) -> Bool {
        let d = car.descriptor
        guard d.zone == zone else { return false }  // hard: privacy zone
        guard d.models.contains(where: { $0.id == model }) else { return false }
        guard !car.draining, car.inFlight < d.slots, now >= car.backoffUntil else { return false }
        if d.policy.onlyWhilePlugged && !car.state.pluggedIn { return false }
        if car.state.chargePercent < d.policy.minChargePercent { return false }
        if let rtt = car.rtt, rtt > self.maxRTTMilliseconds { return false }
        if let departing = car.state.departingInSeconds, departing < self.minSecondsBeforeDeparture { return false }
        return true
    }
}
