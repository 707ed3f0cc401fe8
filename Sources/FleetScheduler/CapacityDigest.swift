/// A replica's compact summary of its free capacity per (zone, model), published to etcd and
/// watched by every other replica (issue #21, DESIGN.md "Many gateways").
///
/// Responsibilities:
/// 1. Summarise a registry: per (zone, model) pool, the cars that can take a job now, their free
///    slots, and the best few predicted TTFTs for a reference request.
/// 2. Stay small and stable: at most ``maxEntries`` entries and ``bestCount`` TTFTs each, TTFTs
///    quantised (so a few milliseconds of jitter is no change), JSON keys one letter long
///    (≈ 60–80 bytes an entry).
/// 3. Say whether it changed (``sameCapacity(as:)``), so a replica publishes only on change.
/// 4. Count the car tunnels connected per region (``k``), so a replica holding more than its share
///    of a region's tunnels can move some to one holding fewer (``TunnelBalance``, in the gateway).
///
/// Pure and `Codable`; the fleet simulator builds the same digests to model their staleness.
public struct CapacityDigest: Codable, Sendable, Hashable {
    /// One (zone, model) pool.
    public struct Entry: Codable, Sendable, Hashable {
        /// The zone.
        public var z: String
        /// The model.
        public var m: String
        /// Cars that can take a job now.
        public var c: Int
        /// Free slots on those cars.
        public var s: Int
        /// The best predicted TTFTs (ms, quantised), best first.
        public var t: [Int]
        /// Free slots of cars reachable here only through their secondary tunnel: counted in
        /// another replica's ``c`` and ``s`` already, so never added to fleet totals, but a reason
        /// to forward here when that replica is gone. Absent when 0.
        public var b: Int?

        public init(
            zone: String, model: String, cars: Int, freeSlots: Int, bestTTFTMilliseconds: [Int],
            secondaryFreeSlots: Int = 0
        ) {
            self.z = zone
            self.m = model
            self.c = cars
            self.s = freeSlots
            self.t = bestTTFTMilliseconds
            self.b = secondaryFreeSlots > 0 ? secondaryFreeSlots : nil
        }

        /// Free slots a forward may take here: the primary cars' and the secondary ones'.
        public var reachableSlots: Int { self.s + (self.b ?? 0) }
    }

    /// Predicted TTFTs per entry, at most.
    public static let bestCount = 3
    /// Entries per digest, at most (the busiest pools first).
    public static let maxEntries = 256

    /// The publishing replica's id.
    public var r: String
    /// Its internal listener, `host:port`.
    public var a: String
    /// When it was built, seconds since 1970 (the receiver derives the digest's age).
    public var at: Double
    /// The pools.
    public var e: [Entry]
    /// Car tunnels connected here per region, primary or not (`{}` when none); nil in a digest from
    /// a replica that does not count them, which then takes no part in moving tunnels.
    public var k: [String: Int]?

    public init(replica: String, address: String, at: Double, entries: [Entry], tunnels: [String: Int]? = nil) {
        self.r = replica
        self.a = address
        self.at = at
        self.e = entries
        self.k = tunnels
    }

    /// Whether the capacity is the same as `other`'s (ignoring when each was built).
    public func sameCapacity(as other: CapacityDigest?) -> Bool {
        guard let other else { return false }
        return self.r == other.r && self.a == other.a && self.e == other.e && self.k == other.k
    }

    /// The entry for (zone, model).
    public func entry(zone: String, model: String) -> Entry? {
        self.e.first { $0.z == zone && $0.m == model }
    }

    /// Quantises a TTFT so jitter is no change: 10 ms steps below 100 ms, then steps of ~10 %.
    public static func quantise(_ milliseconds: Double) -> Int {
        guard milliseconds.isFinite, milliseconds > 0 else { return 0 }
        if milliseconds < 100 { return Int((milliseconds / 10).rounded(.up)) * 10 }
        let step = pow10Floor(milliseconds) / 10
        return Int((milliseconds / step).rounded(.up) * step)
    }

    private static func pow10Floor(_ value: Double) -> Double {
        var p = 1.0
        while p * 10 <= value { p *= 10 }
        return p
    }
}

extension FleetRegistry {
    /// Builds this replica's digest: per (zone, model) pool with a car able to take a job, its
    /// available cars, free slots and the best ``CapacityDigest/bestCount`` predicted TTFTs for a
    /// reference request of `promptTokens` (the policy's own ranking, one decision per pool); and
    /// the tunnels connected per region.
    public func digest(replica: String, address: String, at: Double, now: Double, promptTokens: Int = 100)
        -> CapacityDigest
    {
        var entries: [CapacityDigest.Entry] = []
        for pool in self.poolCapacity() where pool.freeSlots + pool.secondaryFreeSlots > 0 {
            let request = RequestProfile(model: pool.model, zone: pool.zone, promptTokens: promptTokens)
            let decision = self.decide(request, now: now, limit: CapacityDigest.bestCount)
            let best = decision.choices.filter { $0.car != nil }.map {
                CapacityDigest.quantise($0.predictedTTFTMilliseconds)
            }.sorted()
            entries.append(
                .init(
                    zone: pool.zone, model: pool.model, cars: pool.available, freeSlots: pool.freeSlots,
                    bestTTFTMilliseconds: best, secondaryFreeSlots: pool.secondaryFreeSlots))
        }
        entries.sort { ($0.s, $0.z, $0.m) > ($1.s, $1.z, $1.m) }
        return CapacityDigest(
            replica: replica, address: address, at: at, entries: Array(entries.prefix(CapacityDigest.maxEntries)),
            tunnels: self.tunnelsByRegion)
    }
}
