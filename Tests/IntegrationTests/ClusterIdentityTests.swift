import FleetTesting
import Foundation
import Testing

extension ClusterTests {
    /// helper-121: two replicas under one id took the membership key from each other every 10 s, and
    /// only the log said so; `/readyz` and `fleet_cluster_degraded` said all was well.
    @Test(
        "Two replicas under one cluster.replicaID: the one that notices says degraded, with idConflict, and stays ready"
    )
    func sharedReplicaID() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let first = try await Self.replica("twin", etcd: etcd)
        let second = try await Self.replica("twin", etcd: etcd)
        defer { [first, second].forEach { $0.stop() } }
        try await waitUntil(timeout: .seconds(20), "a replica notices another one under its id") {
            for replica in [first, second] {
                let ready = try await Self.ready(replica)
                if ready.body.contains(#""idConflict":true"#) {
                    #expect(ready.status == 200 && ready.body.contains(#""degraded":true"#), "\(ready.body)")
                    let metrics = try await replica.get("/metrics", admin: true).body
                    #expect(metrics.contains("fleet_cluster_degraded 1"), "\(metrics.prefix(200))")
                    let status = try await replica.get("/admin/cluster", admin: true).body
                    #expect(status.contains(#""idConflict":true"#), "\(status)")
                    return true
                }
            }
            return false
        }
    }
}

extension ClusterTests {
    /// helper-121: with a mistyped endpoint the only line was "Cannot read the cluster's keys", naming neither
    /// etcd's address nor the key that sets it.
    @Test("etcd unreachable from the start: a warning naming the endpoint and cluster.etcdEndpoints; still ready")
    func unreachableAtStart() async throws {
        let closed = "http://127.0.0.1:\(try freeLoopbackPort())"
        // A user and password written in the URL are not logged.
        let replica = try await GatewayProcess.start([
            "--etcd", closed.replacingOccurrences(of: "//", with: "//fleet:s3cret@"), "--cluster-replica-id", "alone",
            "--cluster-internal-port", "0",
        ])
        defer { replica.stop() }
        try await waitUntil(timeout: .seconds(10), "the replica says etcd is unreachable") {
            replica.log.contains("etcd unreachable at \(closed) (cluster.etcdEndpoints)")
        }
        #expect(!replica.log.contains("s3cret"))
        let ready = try await Self.ready(replica)
        #expect(ready.status == 200 && ready.body.contains(#""etcd":"unreachable""#), "\(ready.body)")
    }
}
