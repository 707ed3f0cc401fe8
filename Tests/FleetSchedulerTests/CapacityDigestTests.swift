import FleetProtocol
import FleetScheduler
import Foundation
import Testing

@Suite("Capacity digests (issue #21)")
struct CapacityDigestTests {
    @Test(
        "TTFTs are quantised so jitter is no change",
        arguments: [(0.0, 0), (3, 10), (97, 100), (101, 110), (104, 110), (431, 440), (1_234, 1_300)] as [(Double, Int)]
    )
    func quantise(_ milliseconds: Double, expected: Int) {
        #expect(CapacityDigest.quantise(milliseconds) == expected)
    }

    @Test("A car on its secondary tunnel is not counted as a car here, only as reachable slots")
    func primaryOnly() {
        let registry = FleetRegistry()
        _ = registry.register(descriptor("a", slots: 4), state: parked)
        var second = descriptor("b", slots: 3)
        second.primary = false
        _ = registry.register(second, state: parked)
        _ = registry.register(descriptor("us", zone: "us", region: "us-east", slots: 2), state: parked)
        let digest = registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0)
        let eu = digest.entry(zone: "eu", model: "m")
        #expect(eu?.c == 1 && eu?.s == 4 && eu?.b == 3 && eu?.reachableSlots == 7)
        #expect(eu?.t.count == 2 && eu?.t == eu?.t.sorted())
        #expect(digest.entry(zone: "us", model: "m")?.c == 1)
        // Unchanged capacity is no change, whenever it was built; a taken slot is one.
        let later = registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 5, now: 0)
        #expect(later.sameCapacity(as: digest))
        let id = registry.candidates(model: "m", zone: "us", now: 0)[0].id
        let choice = registry.evaluate(id, for: request(zone: "us"), now: 0)!
        _ = registry.acquire(choice, for: request(zone: "us"), now: 0)
        #expect(!registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 6, now: 0).sameCapacity(as: digest))
    }

    @Test("Tunnels are counted per region, secondary ones too; a new tunnel is a change; an older digest decodes")
    func tunnels() throws {
        let registry = FleetRegistry()
        let empty = registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0)
        #expect(empty.k == [:] && JSON.string(empty).contains("\"k\":{}"))
        _ = registry.register(descriptor("a"), state: parked)
        var second = descriptor("b")
        second.primary = false
        _ = registry.register(second, state: parked)
        let us = registry.register(descriptor("us", zone: "us", region: "us-east"), state: parked)
        let digest = registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0)
        #expect(digest.k == ["eu-central": 2, "us-east": 1])
        registry.remove(us.id)
        #expect(!registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0).sameCapacity(as: digest))
        #expect(registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0).k == ["eu-central": 2])
        // A replica that does not count tunnels: no `k`, and it takes no part in moving them.
        let older = try JSONDecoder().decode(
            CapacityDigest.self, from: Data(#"{"r":"r2","a":"10.0.0.2:7080","at":0,"e":[]}"#.utf8))
        #expect(older.k == nil)
    }

    @Test("A digest is bounded: 256 entries at most, ~70 bytes each")
    func bounded() throws {
        let registry = FleetRegistry()
        for i in 0..<300 { _ = registry.register(descriptor("car-\(i)", model: "model-\(i)"), state: parked) }
        let digest = registry.digest(replica: "r1", address: "10.0.0.1:7080", at: 0, now: 0)
        #expect(digest.e.count == CapacityDigest.maxEntries)
        let bytes = JSON.string(digest).utf8.count
        #expect(bytes < CapacityDigest.maxEntries * 90)
    }
}
