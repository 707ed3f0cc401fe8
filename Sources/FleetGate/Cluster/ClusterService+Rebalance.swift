import CoreMetrics
import FleetHTTP2
import FleetScheduler
import Logging

extension ClusterService {
    /// Issue #21, scaling out: moves idle car tunnels from this replica to replicas holding fewer
    /// of their region's (``TunnelBalance``), so a replica added to the cluster takes its share of
    /// the cars already connected. Looks every publish interval (at least every second) and moves
    /// only once a region has looked out of balance for
    /// ``GatewayConfiguration/Cluster/rebalanceRoundSeconds`` (cars connecting after a restart, or
    /// dialling their second tunnel, make a passing imbalance that needs no move); after a round that
    /// moved any, waits as long for the digests to show the moves. Never while this replica drains
    /// or its picture of the others is stale.
    func rebalance() async {
        let balance = TunnelBalance(maxMoves: self.configuration.rebalanceMaxMoves)
        guard balance.maxMoves > 0 else { return }
        let look = max(1, self.configuration.publishIntervalSeconds)
        var unbalancedSince: [String: Double] = [:]
        while !Task.isCancelled {
            let moved = self.core.isDraining ? 0 : self.rebalanceRound(balance, unbalancedSince: &unbalancedSince)
            let pause = moved > 0 ? self.configuration.rebalanceRoundSeconds : look
            try? await Task.sleep(for: .milliseconds(Int64(pause * 1_000)))
        }
    }

    /// One look over the regions this replica holds tunnels of: moves those out of balance for
    /// long enough; returns the tunnels moved.
    func rebalanceRound(_ balance: TunnelBalance, unbalancedSince: inout [String: Double]) -> Int {
        let now = self.core.now
        var moved = 0
        let held = self.core.registry.tunnelsByRegion
        unbalancedSince = unbalancedSince.filter { held[$0.key] != nil }
        for (region, own) in held.sorted(by: { $0.key < $1.key }) {
            guard let peers = self.view.tunnelPeers(region: region, now: now) else { return moved }
            let moves = balance.plan(own: own, peers: peers)
            guard !moves.isEmpty else {
                unbalancedSince[region] = nil
                continue
            }
            let since = unbalancedSince[region] ?? now
            unbalancedSince[region] = since
            guard now - since >= self.configuration.rebalanceRoundSeconds else { continue }
            unbalancedSince[region] = nil
            let tunnels = self.core.registry.all().filter { $0.descriptor.region == region }.shuffled().map {
                TunnelBalance.Tunnel(
                    car: $0.id, primary: $0.descriptor.primary, inFlight: $0.inFlight, draining: $0.draining)
            }
            var chosen = TunnelBalance.choose(moves.reduce(0) { $0 + $1.count }, from: tunnels)[...]
            var sent: [String] = [], regionMoved = 0
            for move in moves {
                let cars = chosen.prefix(move.count).compactMap { self.core.tunnels.handle(for: $0) }
                chosen = chosen.dropFirst(move.count)
                guard !cars.isEmpty else { continue }
                for handle in cars {
                    handle.execute { handler in _ = (handler.delegate as? CarSession)?.move(to: move.address) }
                }
                regionMoved += cars.count
                sent.append("\(move.address)=\(cars.count)")
            }
            guard regionMoved > 0 else { continue }
            moved += regionMoved
            self.view.tunnelsMoved.increment(by: regionMoved)
            self.logger.info(
                "Moving idle car tunnels to replicas holding fewer of the region's",
                metadata: [
                    "fleet.region": "\(region)", "fleet.tunnels.here": "\(own)",
                    "fleet.tunnels.moves": "\(sent.joined(separator: ","))",
                ])
        }
        return moved
    }
}
