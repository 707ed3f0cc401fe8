public import FleetProtocol
import Foundation
import Synchronization

/// Read-only views of the fleet: snapshots, counts and pool capacity for the API, admin pages,
/// metrics and capacity digests.
extension FleetRegistry {

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

    /// Cars connected per region, regions without one left out.
    public var tunnelsByRegion: [String: Int] {
        self.storage.withLock { $0.carsByRegion.filter { $0.value > 0 } }
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

    /// Whether a car of the (zone, model) pool is capacity expected back although none was handed
    /// out: it would take jobs and only its slots or a back-off held it back, not its link or a
    /// departure (``Eligibility/isBusyCapacity(_:now:)``). Asked only when a request found no
    /// candidate, to tell a busy zone (503 `server_overloaded`, retry) from one where nothing can
    /// serve (`no_capacity_in_zone`). Looks at the first ``busyScanLimit`` cars of the pool at most
    /// (it runs under the registry's lock, on a refusal path that can see thousands a second); past
    /// them the zone counts as not busy — the answer before busy zones were told apart.
    /// - Parameter excluding: cars not to count (one that just refused the request itself, or those
    ///   already tried for it).
    /// - Parameter fitting: when given, only cars whose context window the request fits count, looked for
    ///   among the first ``Selector/walkLimit`` cars (a decision that found none asks it, rarely).
    public func hasBusyCapacity(
        model: String, zone: String, now: Double, excluding: [CarID] = [], fitting: RequestProfile? = nil
    ) -> Bool {
        self.storage.withLock { s in
            Self.hasBusyCapacity(
                in: &s, model: model, zone: zone, now: now, excluding: excluding, fitting: fitting,
                eligibility: self.eligibility)
        }
    }

    static func hasBusyCapacity(
        in s: inout Storage, model: String, zone: String, now: Double, excluding: [CarID], fitting: RequestProfile?,
        eligibility: Eligibility
    ) -> Bool {
        guard let index = s.poolIndex[PoolKey(zone: zone, model: model)] else { return false }
        // A car the request fits may have joined after many it does not: looked for as far as a decision walks.
        let limit = fitting == nil ? Self.busyScanLimit : Selector.walkLimit
        return s.pools[Int(index)].all.prefix(limit).contains { slot in
            let slot = Int(slot)
            if excluding.contains(where: { $0.slot == slot && s.generations[slot] == $0.generation }) {
                return false
            }
            guard let car = s.cars[slot], eligibility.isBusyCapacity(car, now: now) else { return false }
            guard let fitting else { return true }
            return s.offerIndex(slot, pool: index).map { Eligibility.fits(s.offer(slot, $0), fitting) } ?? false
        }
    }

    /// Whether `zone` has cars that are capacity (for any model: room for a job, or only their slots
    /// or a back-off holding them — ``Eligibility/isBusyCapacity(_:now:)``; a draining or unplugged
    /// car is not), and whether any has room for a job now (an available car in one of the zone's
    /// pools). Looks at the first ``busyScanLimit`` cars of each pool for capacity, as
    /// ``hasBusyCapacity(model:zone:now:excluding:fitting:)`` does; under the registry's lock, asked on a
    /// request's head only while its zone was lately found without room (``GatewayCore``).
    public func zoneRoom(_ zone: String, now: Double) -> (cars: Bool, available: Bool) {
        self.storage.withLock { s in
            var cars = false
            for pool in s.pools where pool.zone == zone && !pool.all.isEmpty {
                if pool.available > 0 { return (true, true) }
                cars =
                    cars
                    || pool.all.prefix(Self.busyScanLimit).contains { slot in
                        s.cars[Int(slot)].map { self.eligibility.isBusyCapacity($0, now: now) } ?? false
                    }
            }
            return (cars, false)
        }
    }

    /// The most cars ``hasBusyCapacity(model:zone:now:)`` looks at.
    public static let busyScanLimit = 64

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
            backoffUntil: car.backoffUntil, racesLost: Int(car.racesLost), passedOverUntil: car.passedOverUntil,
            learned: Dictionary(learned, uniquingKeysWith: { a, _ in a }),
            prefixHitProbability: car.cachesPrefixes ? car.hits.probability : 0)
    }
}
