import Foundation
import Logging
import Metrics
import NIOCore
import Testing

@testable import FleetGate

/// A car keeps tunnels to two replicas (issue #21), so a quarantine decided on one must hold on the
/// others: it goes through etcd (`<prefix>quarantine/<vehicle>`), and deleting the key there lifts it.
@Suite("Quarantines are shared between replicas")
struct ClusterQuarantineTests {
    static func trust(quarantines file: String? = nil) -> FleetTrust {
        FleetTrust(
            revocationFile: nil, quarantineFile: file, sharesQuarantines: true,
            metrics: TrustMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
    }

    @Test("One decided here is published once; one etcd lists is refused; deleting the key lifts both")
    func trustFollowsEtcd() {
        let trust = Self.trust()
        #expect(trust.quarantine("car-cheat", reason: "failed 2 of 2 audits"))
        #expect(trust.unpublishedQuarantines() == ["car-cheat": "failed 2 of 2 audits"])
        trust.published("car-cheat")
        #expect(trust.unpublishedQuarantines().isEmpty)

        // The watch brings this replica's own and another replica's.
        let listed = ["car-cheat": "failed 2 of 2 audits (replica a)", "car-other": "failed 3 of 4 audits (replica b)"]
        #expect(trust.installClusterQuarantines(listed), "a new vehicle: connected cars are checked")
        #expect(!trust.installClusterQuarantines(listed), "nothing new")
        #expect(trust.refusal(vehicleID: "car-other", identity: nil) == "quarantined: failed 3 of 4 audits (replica b)")

        // An operator deletes both keys: lifted here too, the car decided here included.
        #expect(!trust.installClusterQuarantines([:]))
        #expect(trust.refusal(vehicleID: "car-other", identity: nil) == nil)
        #expect(trust.refusal(vehicleID: "car-cheat", identity: nil) == nil)
        #expect(!trust.isQuarantined("car-cheat"))
    }

    @Test("Without a cluster nothing is queued for etcd; with a quarantine file its line keeps the car out")
    func localRecords() throws {
        let alone = FleetTrust(
            revocationFile: nil, quarantineFile: nil, metrics: TrustMetrics(factory: NOOPMetricsHandler.instance),
            logger: Logger(label: "test"))
        #expect(alone.quarantine("car-cheat", reason: "r"))
        #expect(alone.unpublishedQuarantines().isEmpty)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cq-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let filed = Self.trust(quarantines: dir + "/quarantines")
        #expect(filed.quarantine("car-cheat", reason: "failed 2 of 2 audits"))
        filed.published("car-cheat")
        _ = filed.installClusterQuarantines(["car-cheat": "failed 2 of 2 audits (replica a)"])
        _ = filed.installClusterQuarantines([:])
        #expect(filed.isQuarantined("car-cheat"), "the quarantine file still lists it")

        // helper-91: a quarantine in the file (decided while etcd was down, then a restart) is shared.
        let restarted = Self.trust(quarantines: dir + "/quarantines")
        #expect(restarted.unpublishedQuarantines().keys.sorted() == ["car-cheat"])
        // Not one that etcd already lists.
        let listed = Self.trust(quarantines: dir + "/other-quarantines")
        _ = listed.installClusterQuarantines(["car-cheat": "failed 2 of 2 audits (replica a)"])
        listed.install(quarantines: try RevocationList(parsing: "vehicle car-cheat\n"), readAfter: 0)
        #expect(listed.unpublishedQuarantines().isEmpty)
    }

    @Test("A reason from etcd reaches logs and cars without control characters")
    func printableReason() {
        var state = ClusterView.State()
        ClusterService.apply(
            .put(
                .init(
                    key: "/p/quarantine/car-1",
                    value: ByteBuffer(string: #"{"reason":"bad\u001b[31m\u0007","replica":"a\nb"}"#))),
            prefix: "/p/", to: &state, now: 0)
        #expect(state.quarantines["car-1"] == "bad[31m (replica ab)")
    }

    @Test("The watch reads quarantine keys: a record's reason and replica, a bad vehicle id ignored, a delete")
    func watchedKeys() {
        var state = ClusterView.State()
        let prefix = "/fleetgate/"
        func put(_ key: String, _ value: String) {
            ClusterService.apply(
                .put(.init(key: prefix + key, value: ByteBuffer(string: value))), prefix: prefix, to: &state, now: 0)
        }
        put("quarantine/car-1", #"{"reason":"failed 2 of 2 audits","replica":"a","at":1}"#)
        put("quarantine/car-2", "not json")
        put("quarantine/bad id", #"{"reason":"x"}"#)
        #expect(state.quarantines == ["car-1": "failed 2 of 2 audits (replica a)", "car-2": "listed in etcd"])
        #expect(ClusterService.isQuarantine(.delete(key: prefix + "quarantine/car-1"), prefix: prefix))
        #expect(!ClusterService.isQuarantine(.delete(key: prefix + "digests/a"), prefix: prefix))
        ClusterService.apply(.delete(key: prefix + "quarantine/car-1"), prefix: prefix, to: &state, now: 0)
        #expect(state.quarantines == ["car-2": "listed in etcd"])
    }
}
