import FleetProtocol
import FleetScheduler
import Testing

/// Cars say their model's context window in the hello (`context_tokens`): a request whose prompt and
/// output limit do not fit a car's window goes to a car (or central) it fits, and to a small car only
/// when nothing else could ever take it — its runtime's own 400 is then the answer, as before.
@Suite("Context windows in routing")
struct ContextWindowTests {
    func car(_ id: String, window: Int?, slots: Int = 2) -> CarDescriptor {
        CarDescriptor(
            vehicleID: id, pseudonym: "p-\(id)", region: "eu-central", zone: "eu", hardware: .hw4,
            models: [
                ModelOffer(id: "m", decodeTokensPerSecond: 20, prefillTokensPerSecond: 1200, contextTokens: window)
            ], slots: slots, policy: OwnerPolicy())
    }

    func needing(_ tokens: Int) -> RequestProfile {
        var profile = RequestProfile(model: "m", zone: "eu", promptTokens: tokens, expectedOutputTokens: 100)
        profile.neededContextTokens = tokens
        return profile
    }

    @Test("A request longer than a car's window goes to the car it fits; a short one to either")
    func passedOver() {
        let registry = FleetRegistry()
        let (small, _) = registry.register(self.car("small", window: 8_192), state: parked)
        let (large, _) = registry.register(self.car("large", window: 32_768), state: parked)
        for _ in 0..<20 {
            #expect(registry.decide(self.needing(20_000), now: 1).cars == [large])
        }
        #expect(Set(registry.decide(self.needing(8_192), now: 1, limit: 3).cars) == [small, large], "the edge fits")
        #expect(
            Set(registry.decide(self.needing(32_769), now: 1, limit: 3).cars) == [small, large],
            "fits nowhere: any car, and its runtime answers")
    }

    @Test("A car that does not say its window takes any request")
    func unsaid() {
        let registry = FleetRegistry()
        let (unsaid, _) = registry.register(self.car("unsaid", window: nil), state: parked)
        _ = registry.register(self.car("small", window: 4_096), state: parked)
        #expect(registry.decide(self.needing(100_000), now: 1).cars == [unsaid])
        var unknown = self.needing(100_000)
        unknown.neededContextTokens = 0
        #expect(registry.decide(unknown, now: 1, limit: 3).cars.count == 2, "a request that says nothing fits all")
    }

    @Test("Central with room takes what no free car fits; a busy car it fits is waited for, not a small one")
    func centralAndBusy() throws {
        let registry = FleetRegistry()
        let (small, _) = registry.register(self.car("small", window: 8_192), state: parked)
        let central = CentralOption(predictedTTFTMilliseconds: 400, predictedTPOTMilliseconds: 30, hasRoom: true)
        #expect(registry.decide(self.needing(20_000), central: central, now: 1).choices.map(\.car) == [nil])
        // A large car, busy: the decision is empty (the caller waits for it or says the zone is busy).
        let (large, _) = registry.register(self.car("large", window: 32_768, slots: 1), state: parked)
        let job = try #require(registry.acquire(large, for: self.needing(100), now: 1))
        #expect(registry.decide(self.needing(20_000), now: 2).cars.isEmpty)
        #expect(registry.hasBusyCapacity(model: "m", zone: "eu", now: 2, fitting: self.needing(20_000)))
        registry.finish(
            job, Outcome(ttftMilliseconds: 100, tpotMilliseconds: 40, outputTokens: 4, succeeded: true), now: 3)
        #expect(registry.decide(self.needing(20_000), now: 3).cars == [large])
        // Without it, the small car takes the request, so its runtime answers with the 400.
        #expect(registry.decide(self.needing(20_000), excluding: [large], now: 3).cars == [small])
        #expect(!registry.hasBusyCapacity(model: "m", zone: "eu", now: 3, fitting: self.needing(40_000)))
    }

    @Test("A choice carries its car's window; one chosen past its window says the request does not fit")
    func choiceWindow() throws {
        let registry = FleetRegistry()
        _ = registry.register(self.car("small", window: 8_192), state: parked)
        let relaxed = try #require(registry.decide(self.needing(20_000), now: 1).choices.first)
        #expect(relaxed.contextTokens == 8_192 && !relaxed.fits(self.needing(20_000)))
        #expect(relaxed.fits(self.needing(8_000)))
        let central = CentralOption(predictedTTFTMilliseconds: 400, predictedTPOTMilliseconds: 30, hasRoom: true)
        let spilled = try #require(registry.decide(self.needing(20_000), central: central, now: 1).choices.first)
        #expect(spilled.car == nil && spilled.fits(self.needing(20_000)))
    }

    @Test("A busy car the request fits is found behind many that it does not (helper-124: 64 looked at)")
    func busyBehindMany() throws {
        let registry = FleetRegistry()
        for i in 0..<200 { _ = registry.register(self.car("small-\(i)", window: 4_096, slots: 1), state: parked) }
        let (large, _) = registry.register(self.car("large", window: 32_768, slots: 1), state: parked)
        let job = try #require(registry.acquire(large, for: self.needing(100), now: 1))
        #expect(registry.decide(self.needing(20_000), now: 2).cars.isEmpty, "waits for the large car")
        registry.finish(
            job, Outcome(ttftMilliseconds: 100, tpotMilliseconds: 40, outputTokens: 4, succeeded: true), now: 3)
        #expect(registry.decide(self.needing(20_000), now: 3).cars == [large])
    }

    @Test("When nothing fits, the largest windows come first (the refusal names the most an app may send)")
    func largestFirst() throws {
        let registry = FleetRegistry()
        let (small, _) = registry.register(self.car("small", window: 4_096), state: parked)
        let (large, _) = registry.register(self.car("large", window: 16_384), state: parked)
        let (middle, _) = registry.register(self.car("middle", window: 8_192), state: parked)
        for _ in 0..<10 {
            let decision = registry.decide(self.needing(40_000), now: 1, limit: 3)
            #expect(decision.cars == [large, middle, small])
            #expect(decision.passedOverForWindow > 0)
        }
        #expect(registry.decide(self.needing(100), now: 1).passedOverForWindow == 0)
    }

    @Test("The pool knows its windows as cars come and go: over all of them, the small car at once")
    func poolWindows() throws {
        let registry = FleetRegistry()
        let (small, _) = registry.register(self.car("small", window: 8_192), state: parked)
        var (large, _) = registry.register(self.car("large", window: 32_768), state: parked)
        #expect(registry.decide(self.needing(20_000), now: 1).cars == [large])
        registry.remove(large)
        #expect(registry.decide(self.needing(20_000), now: 1).cars == [small])
        #expect(registry.decide(self.needing(20_000), now: 1).passedOverForWindow > 0)
        (large, _) = registry.register(self.car("large", window: 32_768), state: parked)
        #expect(registry.decide(self.needing(20_000), now: 1).cars == [large])
        // A car that says no window fits anything: the pool is no longer over every window.
        registry.remove(large)
        let (unsaid, _) = registry.register(self.car("unsaid", window: nil), state: parked)
        #expect(registry.decide(self.needing(20_000), now: 1).cars == [unsaid])
        registry.remove(unsaid)
        registry.remove(small)
        #expect(registry.decide(self.needing(20_000), now: 1).cars.isEmpty)
        #expect(registry.register(self.car("small", window: 8_192), state: parked).0 != small, "a new id")
    }

    @Test("A new large car in its slow start takes the long request; the small one passed over is counted")
    func slowStartAndWindow() throws {
        let registry = FleetRegistry()
        _ = registry.register(self.car("small", window: 8_192), state: parked)
        let (large, _) = registry.register(self.car("large", window: 32_768, slots: 4), state: parked)
        // Holding a job before its first token: held back while other capacity can take the request.
        _ = try #require(registry.acquire(large, for: self.needing(100), now: 1))
        let decision = registry.decide(self.needing(20_000), now: 2)
        #expect(decision.cars == [large], "the small car cannot take it, so the held-back one does")
        #expect(decision.passedOverForWindow > 0, "the small car was passed over for its window")
        #expect(registry.decide(self.needing(100), now: 2).cars.first != large, "a short one goes to the small car")
    }

    @Test("The hello's window is checked: 0, negative or past 2²⁴ is a protocol error")
    func helloBounds() {
        for bad in [0, -1, FleetStatus.maxContextTokens + 1] {
            let offer = ModelOffer(id: "m", decodeTokensPerSecond: 1, prefillTokensPerSecond: 1, contextTokens: bad)
            #expect(FleetStatus.problem(with: [offer]) != nil, "\(bad)")
        }
        let good = ModelOffer(id: "m", decodeTokensPerSecond: 1, prefillTokensPerSecond: 1, contextTokens: 131_072)
        #expect(FleetStatus.problem(with: [good]) == nil)
    }
}
