import FleetProtocol
import FleetScheduler
import Testing

@Suite("Registry collection")
struct RegistryCollectionTests {
    @Test("Issue #18 row 8: a car reconnecting with new model names does not grow the registry")
    func reconnectingWithNewModels() {
        let registry = FleetRegistry()
        let steady = registry.register(descriptor("steady", model: "m"), state: parked).id
        for i in 0..<2_000 {
            // Replacement (same vehicle id) and departure both release what the old car held.
            let id = registry.register(descriptor("churner", model: "model-\(i)"), state: parked).id
            if i % 2 == 0 { registry.remove(id) }
        }
        #expect(registry.count == 2)
        #expect(registry.models() == ["m", "model-1999"])
        #expect(registry.retained.pools <= 3 && registry.retained.models <= 3, "\(registry.retained)")
        // The steady car's pool survived the churn and still routes.
        #expect(registry.decide(request(), now: 0).choices.first?.car == steady)
        registry.remove(steady)
        #expect(registry.availableCount(model: "m", zone: "eu") == 0)
        #expect(registry.models() == ["model-1999"])
    }
}
