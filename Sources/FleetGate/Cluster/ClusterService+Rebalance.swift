import CoreMetrics
import FleetHTTP2
import FleetScheduler
import Logging

extension ClusterService {
    /// Issue #21, scaling out: moves idle car tunnels from this replica to replicas holding fewer
    /// of their region's (``TunnelBalance``, over time ``TunnelRebalancing``), so a replica added to
    /// the cluster takes its share of the cars already connected. Looks every publish interval (at
    /// least every second); after a look that moved tunnels, waits
    /// ``GatewayConfiguration/Cluster/rebalanceRoundSeconds`` for the digests to show them. Never
    /// while this replica drains or its picture of the others is stale.
    func rebalance() async {
        guard self.configuration.rebalanceMaxMoves > 0 else { return }
        let look = max(1, self.configuration.publishIntervalSeconds)
        var rebalancing = TunnelRebalancing(
            balance: TunnelBalance(address: self.view.tunnelAddress),
            holdSeconds: self.configuration.rebalanceAfterSeconds)
        // Remainders of proportional shares start at a place of this replica's own (FNV-1a of its id).
        let rotation = Int(self.view.replicaID.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 })
        while !Task.isCancelled {
            let moved = self.core.isDraining ? 0 : self.rebalanceLook(&rebalancing, rotation: rotation)
            let pause = moved > 0 ? self.configuration.rebalanceRoundSeconds : look
            try? await Task.sleep(for: .milliseconds(Int64(pause * 1_000)))
        }
    }

    /// One look over the regions this replica holds tunnels of, `cluster.rebalanceMaxMoves` moves
    /// at most over all of them; returns the tunnels moved.
    func rebalanceLook(_ rebalancing: inout TunnelRebalancing, rotation: Int) -> Int {
        let now = self.core.now
        // The tunnel address is known once the listener is bound (the loop may start before).
        rebalancing.balance.address = self.view.tunnelAddress
        var budget = self.configuration.rebalanceMaxMoves
        let held = self.core.registry.tunnelsByRegion
        rebalancing.begin(held: held.keys, now: now)
        for (region, own) in held.sorted(by: { $0.key < $1.key }) where budget > 0 {
            guard let peers = self.view.tunnelPeers(region: region, now: now) else { break }
            let look = rebalancing.look(
                region: region, own: own, peers: peers, budget: budget, rotation: rotation, now: now)
            for peer in look.unarrived {
                self.logger.warning(
                    "Car tunnels moved to another replica did not arrive there twice in a row; not moving this region's there for 5 minutes (can cars reach its cluster.advertiseTunnelAddress?)",
                    metadata: [
                        "fleet.region": "\(region)", "fleet.replica.tunnel": "\(peer.address)",
                        "fleet.tunnels.there": "\(peer.tunnels)",
                    ])
            }
            guard !look.moves.isEmpty else { continue }
            let made = self.move(region: region, look.moves)
            rebalancing.moved(region: region, made, peers: peers)
            let count = made.reduce(0) { $0 + $1.count }
            guard count > 0 else { continue }
            budget -= count
            self.view.tunnelsMoved.increment(by: count)
            self.logger.info(
                "Moving idle car tunnels to replicas holding fewer of the region's",
                metadata: [
                    "fleet.region": "\(region)", "fleet.tunnels.here": "\(own)",
                    "fleet.tunnels.moves": "\(made.map { "\($0.address)=\($0.count)" }.joined(separator: ","))",
                ])
        }
        return self.configuration.rebalanceMaxMoves - budget
    }

    /// Asks idle cars of `region` to move as `moves` say (``CarSession/move(to:)`` on each tunnel's
    /// event loop); returns the moves made, fewer when too few cars were idle.
    private func move(region: String, _ moves: [TunnelBalance.Move]) -> [TunnelBalance.Move] {
        var tunnels = self.core.registry.all().filter { $0.descriptor.region == region }.shuffled().map {
            TunnelBalance.Tunnel(
                car: $0.id, primary: $0.descriptor.primary, inFlight: $0.inFlight, draining: $0.draining,
                elsewhere: $0.descriptor.elsewhere)
        }
        var made: [TunnelBalance.Move] = []
        for move in moves {
            let chosen = TunnelBalance.choose(move.count, to: move.address, from: tunnels)
            tunnels.removeAll { chosen.contains($0.car) }
            let cars = chosen.compactMap { self.core.tunnels.handle(for: $0) }
            for handle in cars {
                handle.execute { handler in _ = (handler.delegate as? CarSession)?.move(to: move.address) }
            }
            if !cars.isEmpty { made.append(TunnelBalance.Move(address: move.address, count: cars.count)) }
        }
        return made
    }
}
