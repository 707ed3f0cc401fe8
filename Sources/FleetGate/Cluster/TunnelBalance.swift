import FleetScheduler

/// Issue #21, scaling out: how many of a region's car tunnels this replica moves, and to which
/// replicas, so a replica added to a cluster takes its share of the cars already connected. A car
/// keeps its tunnels until one drops, and parked cars stay connected for hours: without moving
/// some, a new replica would serve only the cars that happen to connect after it started. Pure:
/// counts in, moves out.
///
/// Every replica decides for itself from the same picture (its own count, live; the others' from
/// their capacity digests):
/// 1. It moves only what it holds above the *fair share* — the region's tunnels over the
///    replicas that serve it, rounded up — so a difference of one is no reason to move, and two
///    replicas never trade tunnels back and forth.
/// 2. It spreads those over the replicas below the fair share in proportion to what each lacks.
///    As each replica above the share moves only its own excess, and the region's excess is at
///    most what the others lack, replicas deciding at once do not overfill a newcomer.
/// 3. It moves at most ``maxMoves`` in one round; the caller waits for the digests to show the
///    moves (a cool-down) before the next.
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
    }

    /// The most tunnels one round moves (0: none ever).
    var maxMoves: Int

    /// The moves for one region: this replica holds `own` of its tunnels, `peers` the rest.
    func plan(own: Int, peers: [Peer]) -> [Move] {
        guard self.maxMoves > 0, own > 0, !peers.isEmpty else { return [] }
        let replicas = peers.count + 1
        let total = own + peers.reduce(0) { $0 + max(0, $1.tunnels) }
        let fair = (total + replicas - 1) / replicas
        let excess = min(own - fair, self.maxMoves)
        guard excess > 0 else { return [] }
        let lacking = peers.filter { $0.tunnels < fair }.sorted { ($0.tunnels, $0.address) < ($1.tunnels, $1.address) }
        let lack = lacking.reduce(0) { $0 + fair - max(0, $1.tunnels) }
        guard lack > 0 else { return [] }
        // Proportional shares, rounded down; the remainder one each to those that lack most.
        var counts = lacking.map { excess * (fair - max(0, $0.tunnels)) / lack }
        var left = excess - counts.reduce(0, +)
        for index in counts.indices where left > 0 {
            counts[index] += 1
            left -= 1
        }
        return zip(lacking, counts).filter { $0.1 > 0 }.map { Move(address: $0.0.address, count: $0.1) }
    }

    /// Which `count` tunnels to move: idle ones only (a car running a stream stays until a later
    /// round finds it idle), secondary ones first — moving a car's secondary tunnel leaves its
    /// primary, and so the capacity digests, as they are; a primary moved makes the car's other
    /// tunnel primary. `tunnels` in the caller's order (shuffled, so replicas deciding at once
    /// rarely pick the two tunnels of one car).
    static func choose(_ count: Int, from tunnels: [Tunnel]) -> [CarID] {
        let idle = tunnels.filter { !$0.draining && $0.inFlight == 0 }
        let ordered = idle.filter { !$0.primary } + idle.filter(\.primary)
        return ordered.prefix(max(0, count)).map(\.car)
    }
}
