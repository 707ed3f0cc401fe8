import FleetHTTP2
import FleetScheduler
import NIOCore

/// `GET /admin/cluster`: what this replica knows of the others (helper-107: `/readyz` gave counts only,
/// which hid a replica missing from the membership).
struct ClusterStatusView: Encodable {
    /// Another replica's capacity digest as received.
    struct Digest: Encodable {
        var replica: String
        /// Its internal listener, where forwards go.
        var address: String
        /// Seconds since it arrived (a digest older than `cluster.maxDigestAgeSeconds` is not forwarded to).
        var ageSeconds: Double
        /// Cars that can take a job now, and their free slots, over every zone and model.
        var cars: Int
        var freeSlots: Int
        var models: [String]
    }

    var replica: String
    /// `cluster.prefix`: replicas of one fleet share it (one with another prefix is in a cluster of its own).
    var prefix: String
    var etcd: String
    var degraded: Bool
    var watching: Bool
    /// Replicas with a membership key, this one included when its key is in place.
    var members: [String]
    var digests: [Digest]
    /// Replicas this one holds an open connection to, for forwarding.
    var connected: [String]
    var lastError: String?
    /// How this replica's own membership key was lost, until it registered again.
    var ownKeyLost: String?
    /// Another replica wrote this one's key within the last minute (one `cluster.replicaID` for two).
    var idConflict: Bool

    init(_ s: ClusterView.State, replica: String, prefix: String, now: Double) {
        self.replica = replica
        self.prefix = prefix
        self.etcd = s.etcdReachable ? "ok" : "unreachable"
        self.degraded = s.degraded
        self.watching = s.watching
        self.members = s.members.sorted()
        self.digests = s.digests.sorted { $0.key < $1.key }.map { name, digest in
            Digest(
                replica: name, address: digest.a,
                ageSeconds: s.receivedAt[name].map { ((now - $0) * 1000).rounded() / 1000 } ?? -1,
                cars: digest.e.reduce(0) { $0 + $1.c }, freeSlots: digest.e.reduce(0) { $0 + $1.s },
                models: Set(digest.e.map(\.m)).sorted())
        }
        self.connected = s.connections.filter { $0.value.channel.isActive }.keys.sorted()
        self.lastError = s.lastError
        self.ownKeyLost = s.ownKeyLost
        self.idConflict = s.idConflict
    }
}
