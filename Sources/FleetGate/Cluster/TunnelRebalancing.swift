/// When a replica moves car tunnels (issue #21, scaling out): ``TunnelBalance``'s plans over time.
/// Pure and clock-injected (every call takes `now`, monotonic seconds); `ClusterService+Rebalance`
/// feeds it the counts and carries out its moves.
///
/// 1. Hold-down: a region moves nothing until it has looked out of balance for ``holdSeconds``
///    without a break (cars dialling their second tunnel, or a replica back from a restart filling
///    up with its own cars, make an imbalance that passes by itself); once moving, it goes on at
///    every round while the imbalance lasts.
/// 2. Arrivals: a replica named in two rounds in a row whose count has not grown by the look after
///    each did not get the cars sent to it (they cannot reach it): it is named again for that region
///    only after ``skipSeconds``, and the look reports it, to be said once. One miss is no proof: the
///    replica may have lost a car in the same seconds.
struct TunnelRebalancing: Sendable {
    var balance: TunnelBalance
    /// How long a region must look out of balance before it moves anything.
    var holdSeconds: Double
    /// How long a replica the moved cars did not reach is passed over.
    var skipSeconds = 300.0

    /// Per region: since when it has looked out of balance.
    private(set) var unbalancedSince: [String: Double] = [:]
    /// Per region, the replicas named in the last round that moved its tunnels, with their counts then.
    private var named: [String: [String: Int]] = [:]
    /// A replica as a target in one region.
    struct Target: Hashable, Sendable {
        var region: String
        var address: String
    }

    /// Rounds in a row whose cars moved to a target did not arrive.
    private var misses: [Target: Int] = [:]
    /// Targets passed over until a time: moved cars did not arrive.
    private(set) var skipped: [Target: Double] = [:]

    init(balance: TunnelBalance, holdSeconds: Double) {
        self.balance = balance
        self.holdSeconds = holdSeconds
    }

    /// What one look decides for a region.
    struct Look: Equatable {
        /// Tunnels to move now (empty while held down or in balance).
        var moves: [TunnelBalance.Move] = []
        /// Replicas named last round whose count did not grow: passed over from now on.
        var unarrived: [TunnelBalance.Peer] = []
    }

    /// A look begins: regions this replica no longer holds tunnels of, and expired skips, are forgotten.
    mutating func begin(held regions: some Collection<String>, now: Double) {
        let held = Set(regions)
        self.unbalancedSince = self.unbalancedSince.filter { held.contains($0.key) }
        self.named = self.named.filter { held.contains($0.key) }
        self.skipped = self.skipped.filter { $0.value > now }
        self.misses = self.misses.filter { held.contains($0.key.region) }
    }

    /// The look at `region`, where this replica holds `own` tunnels and `peers` the rest.
    mutating func look(
        region: String, own: Int, peers: [TunnelBalance.Peer], budget: Int, rotation: Int, now: Double
    ) -> Look {
        var look = Look()
        for peer in peers {
            guard let before = self.named[region]?[peer.address] else { continue }
            let key = Target(region: region, address: peer.address)
            guard peer.tunnels <= before else {
                self.misses[key] = nil
                continue
            }
            self.misses[key, default: 0] += 1
            if self.misses[key]! >= 2 {
                self.misses[key] = nil
                self.skipped[key] = now + self.skipSeconds
                look.unarrived.append(peer)
            }
        }
        self.named[region] = nil
        let eligible = peers.filter { self.skipped[Target(region: region, address: $0.address)] == nil }
        let moves = self.balance.plan(own: own, peers: eligible, budget: budget, rotation: rotation)
        guard !moves.isEmpty else {
            self.unbalancedSince[region] = nil
            return look
        }
        let since = self.unbalancedSince[region] ?? now
        self.unbalancedSince[region] = since
        guard now - since >= self.holdSeconds else { return look }
        look.moves = moves
        return look
    }

    /// The tunnels moved in `region` this look (fewer than planned when too few were idle), so the
    /// next look can tell whether they arrived.
    mutating func moved(region: String, _ moves: [TunnelBalance.Move], peers: [TunnelBalance.Peer]) {
        var named: [String: Int] = [:]
        for move in moves where move.count > 0 {
            named[move.address] = peers.first { $0.address == move.address }?.tunnels
        }
        self.named[region] = named.isEmpty ? nil : named
    }
}
