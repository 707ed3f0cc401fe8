import FleetProtocol
import FleetScheduler
import Foundation

/// Issue #21 in the simulator: R gateway replicas, each with its own registry (car `c` tunnels to
/// replica `c % R`), requests spread over them by an L4 balancer, capacity digests published every
/// ``SimulationParameters/digestIntervalSeconds`` only on change (so each is up to that stale), and
/// one-hop forwarding by the gateway's rule: when a remote digest's best TTFT beats the best local
/// car by the margin, or there is no local car. R = 1 is the single global registry.
extension Simulation {
    func replica(of car: Int) -> Int { car % self.registries.count }

    func registry(of car: Int) -> FleetRegistry { self.registries[self.replica(of: car)] }

    /// The replica to forward `request` to, or nil to stay: as ``ClusterView``'s `forwardTarget`
    /// (free slots in the digest minus the forwards sent since it; the best reference TTFT against
    /// this replica's own digest's, by the margin; always when no local car can take it).
    func forwardTarget(_ request: Request, localHasCar: Bool) -> Int? {
        guard self.registries.count > 1 else { return nil }
        var best: (replica: Int, ttft: Double)?
        for (i, digest) in self.digests.enumerated() where i != request.replica {
            guard let entry = digest?.entry(zone: request.zone, model: SimulationParameters.requestModel),
                entry.reachableSlots - self.forwardsSinceDigest[request.replica][i] > 0
            else { continue }
            let ttft = entry.t.first.map(Double.init) ?? .infinity
            if best == nil || ttft < best!.ttft { best = (i, ttft) }
        }
        guard let best else { return nil }
        if localHasCar {
            guard
                let own = self.digests[request.replica]?.entry(
                    zone: request.zone, model: SimulationParameters.requestModel)?.t.first,
                best.ttft + self.parameters.forwardMarginMilliseconds < Double(own)
            else { return nil }
        }
        return best.replica
    }

    /// Every replica builds its digest; a changed one is a write to etcd (counted in the
    /// measured window with its JSON size) and becomes what the others see.
    func publishDigests() {
        let measured = self.now >= self.parameters.warmupSeconds && self.now < self.arrivalsEnd
        for (i, registry) in self.registries.enumerated() {
            let digest = registry.digest(replica: "r\(i)", address: "10.0.0.\(i):7080", at: self.now, now: self.now)
            guard !digest.sameCapacity(as: self.digests[i]) else { continue }
            self.digests[i] = digest
            for sender in self.forwardsSinceDigest.indices { self.forwardsSinceDigest[sender][i] = 0 }
            if measured {
                self.digestWrites += 1
                self.digestBytes += JSON.string(digest).utf8.count
            }
        }
    }
}
