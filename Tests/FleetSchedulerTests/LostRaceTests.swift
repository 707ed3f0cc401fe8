import FleetProtocol
import FleetScheduler
import Testing

/// helper-84, helper-87, helper-88: the attempt a hedge beat to the first token had longer than the hedge
/// needed and gave nothing. A car whose every job a hedge rescued was never told: it stayed as fast as it
/// advertised, and each of its jobs cost a request the hedge's delay. A lost race is no failure (a slow
/// car is not a broken one), but it is a lower bound of the car's time to first token, and the car is
/// passed over for a while — softly, as slow start passes a new car over.
@Suite("A lost hedge race")
struct LostRaceTests {
    let delivered = Outcome(ttftMilliseconds: 150, tpotMilliseconds: 40, outputTokens: 8, succeeded: true)

    func lost(after milliseconds: Double) -> Outcome {
        var outcome = Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true)
        outcome.lostRaceAfterMilliseconds = milliseconds
        return outcome
    }

    /// Two proven cars with four slots each.
    func fleet() -> (FleetRegistry, a: CarID, b: CarID) {
        let registry = FleetRegistry()
        let (a, _) = registry.register(descriptor("a", slots: 4), state: parked)
        let (b, _) = registry.register(descriptor("b", slots: 4), state: parked)
        for car in [a, b] { registry.finish(registry.acquire(car, for: request(), now: 0)!, self.delivered, now: 0) }
        return (registry, a, b)
    }

    func snapshot(_ registry: FleetRegistry, _ id: CarID) throws -> CarSnapshot {
        try #require(registry.all().first { $0.id == id })
    }

    @Test("Passed over while another car has room, 0.5 s doubling with each race lost in a row; no failure")
    func passedOver() throws {
        let (registry, a, b) = self.fleet()
        registry.finish(try #require(registry.acquire(a, for: request(), now: 1)), self.lost(after: 400), now: 1)
        var car = try self.snapshot(registry, a)
        #expect(car.racesLost == 1 && car.passedOverUntil == 1.5)
        #expect(car.consecutiveFailures == 0 && car.backoffUntil == 0, "not a failure: no back-off, no probation")
        for _ in 0..<10 { #expect(registry.decide(request(), now: 1.2).cars == [b]) }
        #expect(registry.decide(request(), now: 1.6).cars.contains(a), "over after 0.5 s")
        registry.finish(try #require(registry.acquire(a, for: request(), now: 2)), self.lost(after: 400), now: 2)
        car = try self.snapshot(registry, a)
        #expect(car.racesLost == 2 && car.passedOverUntil == 3)
        // Soft: with the other car full, the request goes to it rather than being refused.
        let leases = (0..<4).compactMap { _ in registry.acquire(b, for: request(), now: 2.1) }
        #expect(leases.count == 4)
        let choice = try #require(registry.decide(request(), now: 2.1).choices.first)
        #expect(choice.car == a)
        let served = try #require(registry.acquire(choice, for: request(), now: 2.1))
        // A token ends it.
        registry.finish(served, self.delivered, now: 2.5)
        car = try self.snapshot(registry, a)
        #expect(car.racesLost == 0 && car.passedOverUntil == 0)
        leases.forEach { registry.finish($0, self.delivered, now: 2.5) }
        #expect(registry.decide(request(), now: 2.6).cars.contains(a))
    }

    @Test("A choice ranked before the loss is refused at acquire; the hedge that beat it says nothing")
    func checkedAtAcquire() throws {
        let (registry, a, _) = self.fleet()
        let early = try #require(registry.decide(request(), now: 1).choices.first { $0.car == a })
        registry.finish(try #require(registry.acquire(a, for: request(), now: 1)), self.lost(after: 400), now: 1)
        #expect(registry.acquire(early, for: request(), now: 1.1) == nil)
        #expect(registry.isHeldBack(a, now: 1.1) && !registry.isHeldBack(a, now: 1.6))
        // A job cancelled before its first token for another reason (its client gone, or a hedge the
        // first attempt beat) is no lost race.
        let cancelled = Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true)
        registry.finish(try #require(registry.acquire(a, for: request(), now: 2)), cancelled, now: 2)
        #expect(try self.snapshot(registry, a).racesLost == 1)
    }

    @Test("What it waited is a lower bound of its time to first token: learnt above what is known, never lowering it")
    func lowerBound() throws {
        let (registry, a, _) = self.fleet()
        func slowdown() throws -> Double { try #require(try self.snapshot(registry, a).learned["m"]).prefillSlowdown }
        let before = try slowdown()
        // 100 prompt tokens at the advertised 1,200 a second are 83 ms; no token after 2 s says it is slower.
        registry.finish(try #require(registry.acquire(a, for: request(), now: 1)), self.lost(after: 2_000), now: 1)
        let raised = try slowdown()
        #expect(raised > 2 * before, "\(before) → \(raised)")
        // Counted, so the next bound weighs less, as observations do.
        #expect(try #require(try self.snapshot(registry, a).learned["m"]).prefillObservations == 2)
        // A bound below what is known says nothing.
        registry.finish(try #require(registry.acquire(a, for: request(), now: 2)), self.lost(after: 100), now: 2)
        #expect(try slowdown() == raised)
    }
}
