import FleetScheduler

/// Issue #21, scaling out: how many of a region's car tunnels this replica moves, and to which
/// replicas, so a replica added to a cluster takes its share of the cars already connected. A car
/// keeps its tunnels until one drops, and parked cars stay connected for hours: without moving
/// some, a new replica would serve only the cars that happen to connect after it started. Pure:
/// counts in, moves out.
///
/// Every replica decides for itself from the same picture (its own count, live; the others' from
/// their capacity digests):
/// 1. The region's tunnels T over its n replicas make each replica's *target*: T / n, one more for
///    the first T mod n replicas by tunnel address — the same targets wherever they are computed, and
///    they add up to T.
/// 2. A replica moves only while it holds more than its target *and* more than the least loaded
///    replica by over a tolerance (5 % of the mean, at least 1): a car that connects or leaves is no
///    reason to move another, and a large cluster does not chase the last few tunnels.
/// 3. It moves its excess over its target, at most the round's budget, to the replicas below their
///    targets in proportion to what each lacks; the shares' rounding remainders start at a
///    replica-specific place (`rotation`), so replicas deciding at once do not all round towards one.
struct TunnelBalance: Sendable, Equatable {
    /// Another replica serving the region, as its digest and membership record describe it.
    struct Peer: Sendable, Equatable {
        /// The tunnel address cars dial for it.
        var address: String
        /// The region's car tunnels connected there.
        var tunnels: Int
    }

    /// Tunnels to send to one replica.
    struct Move: Sendable, Equatable {
        /// Its tunnel address (`reconnect`'s `to`).
        var address: String
        var count: Int
    }

    /// One of this replica's car tunnels, as the choice of which to move sees it.
    struct Tunnel: Sendable, Equatable {
        var car: CarID
        /// Whether this replica holds the car's primary tunnel.
        var primary: Bool
        /// Streams the car runs now.
        var inFlight: Int
        /// Told to leave already (draining, quarantined, its region removed).
        var draining: Bool
        /// Where the car's other tunnels are (nil: it did not say).
        var elsewhere: [String]? = nil
    }

    /// The gap to the least loaded replica that is no reason to move, as a share of the mean.
    static let tolerance = 0.05
    /// A digest's count is believed up to this (a corrupt one cannot overflow the sums).
    static let countLimit = 10_000_000

    /// This replica's tunnel address.
    var address: String

    /// The moves for one region: this replica holds `own` of its tunnels, `peers` the rest.
    /// - Parameters:
    ///   - budget: the most tunnels to move (what the round has left).
    ///   - rotation: where the rounding remainders start among the receivers.
    func plan(own: Int, peers: [Peer], budget: Int, rotation: Int = 0) -> [Move] {
        guard budget > 0, own > 0, !peers.isEmpty else { return [] }
        let own = min(own, Self.countLimit)
        let peers = peers.map { Peer(address: $0.address, tunnels: min(max(0, $0.tunnels), Self.countLimit)) }
        let total = own + peers.reduce(0) { $0 + $1.tunnels }
        let replicas = peers.count + 1
        let ranked = ([self.address] + peers.map(\.address)).sorted()
        func target(_ address: String) -> Int {
            total / replicas + ((ranked.firstIndex(of: address) ?? replicas) < total % replicas ? 1 : 0)
        }
        let tolerance = max(1, Int(Double(total) / Double(replicas) * Self.tolerance))
        let least = peers.map(\.tunnels).min()!
        guard own - least > tolerance, own > target(self.address) else { return [] }
        let excess = min(own - target(self.address), budget)
        let lacking = peers.filter { $0.tunnels < target($0.address) }.sorted { $0.address < $1.address }
        let lack = lacking.reduce(0) { $0 + target($1.address) - $1.tunnels }
        guard lack > 0 else { return [] }
        // Proportional shares, rounded down; the remainder one each from `rotation` on.
        var counts = lacking.map { min(excess * (target($0.address) - $0.tunnels) / lack, excess) }
        var left = excess - counts.reduce(0, +)
        var index = abs(rotation % lacking.count)
        while left > 0 {
            counts[index] += 1
            left -= 1
            index = (index + 1) % lacking.count
        }
        return zip(lacking, counts).filter { $0.1 > 0 }.map { Move(address: $0.0.address, count: $0.1) }
    }

    /// Which `count` tunnels to move to the replica at `address`: idle ones only (a car running a
    /// stream stays until a later round finds it idle), never one of a car whose other tunnel is
    /// there already (it could not go there: with two replicas, every second tunnel is such a car's),
    /// secondary ones first — moving a car's secondary tunnel leaves its primary, and so the capacity
    /// digests, as they are; a primary moved makes the car's other tunnel primary. `tunnels` in the
    /// caller's order (shuffled, so replicas deciding at once rarely pick the two tunnels of one car).
    static func choose(_ count: Int, to address: String, from tunnels: [Tunnel]) -> [CarID] {
        let idle = tunnels.filter { !$0.draining && $0.inFlight == 0 && !($0.elsewhere ?? []).contains(address) }
        let ordered = idle.filter { !$0.primary } + idle.filter(\.primary)
        return ordered.prefix(max(0, count)).map(\.car)
    }
}
