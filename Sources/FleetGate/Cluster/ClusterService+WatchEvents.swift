import FleetProtocol
import FleetScheduler
import NIOCore

extension ClusterService {
    /// Applies one watched change to the view's state.
    /// - Parameter own: this replica's id and advertised address, to notice its own key written by another
    ///   replica or deleted (``ClusterView/State/ownKeyLost``).
    static func apply(
        _ event: EtcdClient.Event, prefix: String, to s: inout ClusterView.State, now: Double,
        own: (replica: String, address: String)? = nil
    ) {
        switch event {
        case .put(let value):
            let name = value.key.dropFirst(prefix.count)
            if name.hasPrefix("members/") {
                let replica = String(name.dropFirst("members/".count))
                s.members.insert(replica)
                let record = try? JSON.decode(MemberRecord.self, from: value.value.readableBytesView)
                if let tunnel = record?.tunnel, !tunnel.isEmpty {
                    s.memberTunnels[replica] = (tunnel, Set(record?.regions ?? []))
                }
                // Only after this life's own write: a record of its id with another address read back from
                // before it is an earlier life's (a restart within the lease's TTL, at a new address), not
                // another replica's.
                if let own, replica == own.replica, let address = record?.address, address != own.address,
                    s.ownRevision > 0, value.modRevision > s.ownRevision
                {
                    s.ownKeyLost = "written by another replica at \(Self.printable(address, limit: 64))"
                }
            } else if name.hasPrefix("digests/"),
                let digest = try? JSON.decode(CapacityDigest.self, from: value.value.readableBytesView)
            {
                let replica = String(name.dropFirst("digests/".count))
                guard digest.r == replica else { return }
                s.digests[replica] = digest
                s.receivedAt[replica] = now
            } else if name.hasPrefix("quarantine/") {
                let vehicle = String(name.dropFirst("quarantine/".count))
                guard VehicleIdentity.isValidName(vehicle) else { return }
                let record = try? JSON.decode(QuarantineRecord.self, from: value.value.readableBytesView)
                // Printable text only: the reason reaches logs and the car's control channel (helper-91).
                let reason = Self.printable(record?.reason ?? "listed in etcd", limit: 200)
                s.quarantines[vehicle] =
                    record?.replica.map { "\(reason) (replica \(Self.printable($0, limit: 64)))" } ?? reason
            }
        case .delete(let key):
            let name = key.dropFirst(prefix.count)
            if name.hasPrefix("members/") {
                let replica = String(name.dropFirst("members/".count))
                s.members.remove(replica)
                if let own, replica == own.replica { s.ownKeyLost = "deleted" }
                s.memberTunnels[replica] = nil
                s.digests[replica] = nil
                s.receivedAt[replica] = nil
            } else if name.hasPrefix("digests/") {
                let replica = String(name.dropFirst("digests/".count))
                s.digests[replica] = nil
                s.receivedAt[replica] = nil
            } else if name.hasPrefix("quarantine/") {
                s.quarantines[String(name.dropFirst("quarantine/".count))] = nil
            }
        }
    }
}
