import FleetProtocol
import FleetScheduler
import Logging
import NIOCore
import Testing

@testable import FleetGate

@Suite("Cluster view from etcd's watch (issue #21)")
struct ClusterWatchTests {
    static let prefix = "/fleetgate/"

    static func digest(_ replica: String, cars: Int) -> EtcdClient.Event {
        let digest = CapacityDigest(
            replica: replica, address: "10.0.0.1:7080", at: 0,
            entries: [.init(zone: "eu", model: "m", cars: cars, freeSlots: cars * 2, bestTTFTMilliseconds: [120])])
        return .put(.init(key: Self.prefix + "digests/" + replica, value: JSON.buffer(digest)))
    }

    @Test("Members and digests come and go with their keys; a lapsed lease takes the replica's digest with it")
    func membership() {
        var state = ClusterView.State()
        ClusterService.apply(
            .put(.init(key: Self.prefix + "members/r2", value: ByteBuffer(string: "{}"))), prefix: Self.prefix,
            to: &state, now: 1)
        ClusterService.apply(Self.digest("r2", cars: 3), prefix: Self.prefix, to: &state, now: 1)
        #expect(state.members == ["r2"] && state.digests["r2"]?.e.first?.c == 3)
        ClusterService.apply(Self.digest("r2", cars: 1), prefix: Self.prefix, to: &state, now: 2)
        #expect(state.digests["r2"]?.e.first?.c == 1 && state.receivedAt["r2"] == 2)
        ClusterService.apply(.delete(key: Self.prefix + "members/r2"), prefix: Self.prefix, to: &state, now: 3)
        #expect(state.members.isEmpty && state.digests.isEmpty)
    }

    @Test("This replica's own key written by another replica under its id, or deleted, is noticed (helper-107)")
    func ownKeyLost() {
        var state = ClusterView.State()
        let own = (replica: "r1", address: "10.0.0.1:7080")
        func member(_ address: String, revision: Int64) -> EtcdClient.Event {
            .put(
                .init(
                    key: Self.prefix + "members/r1", value: ByteBuffer(string: #"{"address":"\#(address)"}"#),
                    modRevision: revision))
        }
        // An earlier life's record at another address (a restart within the lease's TTL), read before this
        // life wrote its own, and again after: not another replica (note 44: a minute of idConflict).
        ClusterService.apply(member("10.0.0.9:7080", revision: 5), prefix: Self.prefix, to: &state, now: 1, own: own)
        #expect(state.ownKeyLost == nil)
        state.ownRevision = 9
        ClusterService.apply(member("10.0.0.9:7080", revision: 5), prefix: Self.prefix, to: &state, now: 1, own: own)
        ClusterService.apply(member("10.0.0.1:7080", revision: 9), prefix: Self.prefix, to: &state, now: 1, own: own)
        #expect(state.ownKeyLost == nil)
        // Written at another address after this life's write: another replica under this id.
        ClusterService.apply(member("10.0.0.9:7080", revision: 12), prefix: Self.prefix, to: &state, now: 2, own: own)
        #expect(state.ownKeyLost?.contains("another replica at 10.0.0.9:7080") == true)
        state.ownKeyLost = nil
        ClusterService.apply(
            .delete(key: Self.prefix + "members/r1"), prefix: Self.prefix, to: &state, now: 3, own: own)
        #expect(state.ownKeyLost == "deleted")
        // Another replica's key says nothing of ours.
        state.ownKeyLost = nil
        ClusterService.apply(
            .delete(key: Self.prefix + "members/r2"), prefix: Self.prefix, to: &state, now: 4, own: own)
        #expect(state.ownKeyLost == nil)
    }

    @Test("A replica alone under its prefix says so, naming the prefix; the members are said when they change")
    func membershipLines() {
        let alone = ClusterView.membershipLine(others: [], before: nil, prefix: "/fleetgat/")
        #expect(alone?.level == .notice && alone?.message.contains("'/fleetgat/'") == true)
        #expect(alone?.message.contains("alone") == true)
        #expect(ClusterView.membershipLine(others: [], before: [], prefix: Self.prefix) == nil)
        let joined = ClusterView.membershipLine(others: ["r3", "r2"], before: [], prefix: Self.prefix)
        #expect(joined?.level == .info && joined?.message.hasSuffix("this replica and r2, r3") == true)
        #expect(ClusterView.membershipLine(others: ["r2", "r3"], before: ["r3", "r2"], prefix: Self.prefix) == nil)
        #expect(ClusterView.membershipLine(others: [], before: ["r2"], prefix: Self.prefix)?.level == .notice)
    }

    @Test("Replicas advertising one tunnel address (one balancer's name) are named in a warning")
    func sharedTunnelAddress() {
        #expect(ClusterView.sharedTunnelWarning(["r1": "10.0.0.1:7443", "r2": "10.0.0.2:7443"]) == nil)
        #expect(ClusterView.sharedTunnelWarning([:]) == nil)
        let warning = ClusterView.sharedTunnelWarning([
            "r1": "lb.example:7443", "r2": "lb.example:7443", "r3": "10.0.0.3:7443", "r4": "lb.example:7443",
        ])
        #expect(warning?.contains("lb.example:7443 (r1, r2, r4)") == true, "\(warning ?? "-")")
        #expect(warning?.contains("r3") == false && warning?.contains("cluster.advertiseTunnelAddress") == true)
    }

    @Test("Replicas sharing a tunnel address take no part in rebalancing; one sharing this replica's, none at all")
    func sharedTunnelAddressRebalancing() {
        let regions: Set<String> = ["eu-central"]
        let counts: [String: [String: Int]?] = [
            "r1": ["eu-central": 2], "r2": ["eu-central": 4], "r3": ["eu-central": 6],
        ]
        func peers(own: String, _ members: [String: String]) -> [String]? {
            ClusterView.tunnelPeers(
                region: "eu-central", own: ("r3", own), members: members.mapValues { ($0, regions) }, counts: counts
            )?.map { "\($0.address)=\($0.tunnels)" }.sorted()
        }
        // Each its own address: both others are peers.
        #expect(peers(own: "h:7443", ["r1": "h:7441", "r2": "h:7442", "r3": "h:7443"]) == ["h:7441=2", "h:7442=4"])
        // r1 and r2 behind one address (helper-121): a car sent there may land on either; r3 balances alone.
        #expect(peers(own: "h:7443", ["r1": "h:7442", "r2": "h:7442", "r3": "h:7443"]) == [])
        // This replica shares its own address: it would send cars to itself.
        #expect(peers(own: "h:7442", ["r1": "h:7441", "r2": "h:7442", "r3": "h:7442"]) == nil)
        // Host names compare without case: `H:7442` is `h:7442` (note 44).
        #expect(peers(own: "h:7443", ["r1": "H:7442", "r2": "h:7442", "r3": "h:7443"]) == [])
        #expect(peers(own: "GW:7443", ["r1": "h:7441", "r2": "gw:7443", "r3": "GW:7443"]) == nil)
        // Before its own membership record is read back, its address still counts.
        #expect(peers(own: "h:7442", ["r1": "h:7441", "r2": "h:7442"]) == nil)
        // A digest without tunnel counts (an older replica) is no peer.
        #expect(
            ClusterView.tunnelPeers(
                region: "eu-central", own: ("r3", "h:7443"), members: ["r1": ("h:7441", regions)], counts: ["r1": nil])
                == [])
    }

    @Test("Without cluster.replicaID a replica is named by its host and internal port")
    func defaultReplicaID() {
        #expect(ClusterView.defaultReplicaID(hostName: "gw-1", internalPort: 7080) == "gw-1:7080")
        #expect(ClusterView.defaultReplicaID(hostName: "gw-1", internalPort: 7095) != "gw-1:7080")
        #expect(ClusterView.defaultReplicaID(hostName: "a/b", internalPort: 0) == "a_b")
    }

    @Test("A digest under another replica's key, or not a digest at all, is ignored")
    func refusesMismatch() {
        var state = ClusterView.State()
        let forged = CapacityDigest(replica: "r9", address: "10.0.0.9:7080", at: 0, entries: [])
        ClusterService.apply(
            .put(.init(key: Self.prefix + "digests/r2", value: JSON.buffer(forged))), prefix: Self.prefix, to: &state,
            now: 1)
        ClusterService.apply(
            .put(.init(key: Self.prefix + "digests/r3", value: ByteBuffer(string: "not json"))), prefix: Self.prefix,
            to: &state, now: 1)
        #expect(state.digests.isEmpty)
    }
}
