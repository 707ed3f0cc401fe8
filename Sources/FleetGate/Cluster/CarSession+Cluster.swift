import FleetHTTP2
import FleetProtocol
import FleetScheduler

extension CarSession {
    /// Issue #21: tells the car the tunnel addresses of its region's other live replicas and this
    /// replica's own (control `replicas`), so a car configured with one address keeps its tunnels
    /// on distinct replicas and knows where to go when this one drains or dies. Sent after the
    /// hello and whenever the list changes; nothing when clustering is off or the list is as last sent.
    func tellReplicas() {
        guard let cluster = self.core.cluster, let region = self.region, self.carID != nil else { return }
        let others = cluster.otherTunnels(region: region)
        guard others != self.toldReplicas else { return }
        self.toldReplicas = others
        self.send(ControlMessage(type: .replicas, to: others, from: cluster.tunnelAddress))
    }

    /// The `reconnect` sent when this replica drains: with the other live replicas' tunnel
    /// addresses (issue #21), so the car moves to one of them rather than waiting for this one.
    func reconnectMessage() -> ControlMessage {
        guard let cluster = self.core.cluster, let region = self.region else {
            return ControlMessage(type: .reconnect, reason: "gateway draining")
        }
        return ControlMessage(
            type: .reconnect, to: cluster.otherTunnels(region: region), from: cluster.tunnelAddress,
            reason: "gateway draining")
    }

    /// Moves this tunnel to the replica at `address` (``TunnelBalance``): the car gets no new work
    /// here, hears `reconnect` naming that replica (its agent dials it next), and the tunnel closes
    /// (GOAWAY) once its streams finish. Nothing when the car is told to leave already.
    /// - Returns: whether the tunnel was moved.
    @discardableResult
    func move(to address: String) -> Bool {
        // On the tunnel's loop: a job given to the car since the round chose it keeps it here.
        guard let id = self.carID, let cluster = self.core.cluster, !self.leavingRemovedRegion, !self.core.isDraining,
            let car = self.core.registry.snapshot(id), !car.draining, car.inFlight == 0
        else { return false }
        self.core.registry.setDraining(id)
        self.send(
            ControlMessage(
                type: .reconnect, to: [address], from: cluster.tunnelAddress,
                reason: "rebalancing: another replica holds fewer of the region's cars", rebalance: true))
        self.handle.onLoop.beginGracefulShutdown()
        return true
    }

    /// A state message's `primary` (issue #21): the car's primary tunnel to another replica went
    /// and this one took over (or the reverse), so this replica counts it in its digest (or not);
    /// and its `elsewhere`: where the car's other tunnels are now.
    func applyPrimary(_ message: StatusMessage) {
        guard let id = self.carID else { return }
        if let primary = message.primary { self.core.registry.setPrimary(id, primary) }
        if let elsewhere = message.elsewhere { self.core.registry.setElsewhere(id, Self.boundedElsewhere(elsewhere)) }
    }

    /// A car's `elsewhere` as kept: 8 addresses of 256 bytes at most (a car has a few tunnels).
    static func boundedElsewhere(_ addresses: [String]) -> [String] {
        addresses.prefix(8).map { String($0.utf8.prefix(256)) ?? "" }
    }
}
