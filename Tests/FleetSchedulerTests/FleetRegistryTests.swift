import FleetProtocol
import FleetScheduler
import Testing

func descriptor(
    _ id: String, zone: String = "eu", region: String = "eu-central", slots: Int = 2, model: String = "m",
    policy: OwnerPolicy = OwnerPolicy()
) -> CarDescriptor {
    CarDescriptor(
        vehicleID: id, pseudonym: "p-\(id)", region: region, zone: zone, hardware: .hw4,
        models: [ModelOffer(id: model, decodeTokensPerSecond: 20, prefillTokensPerSecond: 1200)], slots: slots,
        policy: policy)
}

let parked = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2)

func request(zone: String = "eu", model: String = "m", prompt: Int = 100) -> RequestProfile {
    RequestProfile(model: model, zone: zone, promptTokens: prompt, expectedOutputTokens: 100)
}

@Suite("Fleet registry and eligibility")
struct FleetRegistryTests {
    @Test("The zone is a hard filter: a free car outside it is never a candidate")
    func zoneIsHard() {
        let registry = FleetRegistry()
        _ = registry.register(descriptor("us", zone: "us", region: "us-east"), state: parked)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).isEmpty)
        _ = registry.register(descriptor("eu"), state: parked)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).map(\.descriptor.vehicleID) == ["eu"])
    }

    @Test(
        "Ineligible cars are filtered",
        arguments: [
            ("unplugged", VehicleState(pluggedIn: false, chargePercent: 80, link: .wifi, slotsFree: 2)),
            ("low charge", VehicleState(pluggedIn: true, chargePercent: 20, link: .wifi, slotsFree: 2)),
            (
                "thin uplink",
                VehicleState(pluggedIn: true, chargePercent: 80, link: .cellular, slotsFree: 2, uplinkMbps: 0.1)
            ),
            (
                "departing",
                VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, departingInSeconds: 30, slotsFree: 2)
            ),
        ])
    func filters(name: String, state: VehicleState) {
        let registry = FleetRegistry()
        _ = registry.register(descriptor("a"), state: state)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).isEmpty, "\(name)")
    }

    @Test("An owner who allows serving unplugged is honoured")
    func ownerPolicy() {
        let registry = FleetRegistry()
        _ = registry.register(
            descriptor("a", policy: OwnerPolicy(onlyWhilePlugged: false, minChargePercent: 10)),
            state: VehicleState(pluggedIn: false, chargePercent: 30, link: .cellular, slotsFree: 2))
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).count == 1)
    }

    @Test("Slots are taken and returned; a full car is not a candidate")
    func slots() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a", slots: 1), state: parked)
        let job = registry.acquire(id, for: request(), now: 0)
        #expect(job != nil)
        #expect(registry.acquire(id, for: request(), now: 0) == nil)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).isEmpty)
        registry.finish(
            job!, Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true), now: 0)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).count == 1)
    }

    @Test("A zone's room: whether it has capacity (not a draining or unplugged car), whether any has room")
    func zoneRoom() {
        let registry = FleetRegistry()
        #expect(registry.zoneRoom("eu", now: 0) == (false, false))
        let (id, _) = registry.register(descriptor("a", slots: 1), state: parked)
        #expect(registry.zoneRoom("eu", now: 0) == (true, true))
        #expect(registry.zoneRoom("us", now: 0) == (false, false))
        let job = registry.acquire(id, for: request(), now: 0)
        #expect(job != nil && registry.zoneRoom("eu", now: 0) == (true, false), "full: capacity, no room")
        registry.finish(
            job!, Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true), now: 0)
        #expect(registry.zoneRoom("eu", now: 0) == (true, true))
        // A car that would not take jobs is no capacity: routing tells its zone `no_capacity_in_zone`.
        registry.update(id, state: VehicleState(pluggedIn: false, chargePercent: 80, link: .wifi, slotsFree: 0))
        #expect(registry.zoneRoom("eu", now: 0) == (false, false), "unplugged")
        registry.update(id, state: parked)
        registry.setDraining(id)
        #expect(registry.zoneRoom("eu", now: 0) == (false, false), "draining")
        registry.remove(id)
        #expect(registry.zoneRoom("eu", now: 0) == (false, false))
    }

    @Test(
        "Busy capacity: a full car is busy (retry soon); one that is draining, unplugged, on a thin link or departing is not"
    )
    func busyCapacity() {
        let registry = FleetRegistry()
        #expect(!registry.hasBusyCapacity(model: "m", zone: "eu", now: 0))
        let (id, _) = registry.register(descriptor("a", slots: 1), state: parked)
        #expect(registry.hasBusyCapacity(model: "m", zone: "eu", now: 0))  // available
        let job = registry.acquire(id, for: request(), now: 0)
        #expect(job != nil && registry.availableCount(model: "m", zone: "eu") == 0)
        #expect(registry.hasBusyCapacity(model: "m", zone: "eu", now: 0))  // full, not gone
        // Cars a request already tried do not count (a retry that found nobody else).
        let (other, _) = registry.register(descriptor("b", slots: 1), state: parked)
        #expect(registry.hasBusyCapacity(model: "m", zone: "eu", now: 0, excluding: [id]))
        #expect(!registry.hasBusyCapacity(model: "m", zone: "eu", now: 0, excluding: [id, other]))
        registry.remove(other)
        #expect(!registry.hasBusyCapacity(model: "m", zone: "us", now: 0))
        #expect(!registry.hasBusyCapacity(model: "other", zone: "eu", now: 0))
        for (name, state) in [
            ("unplugged", VehicleState(pluggedIn: false, chargePercent: 80, link: .wifi, slotsFree: 0)),
            (
                "thin uplink",
                VehicleState(pluggedIn: true, chargePercent: 80, link: .cellular, slotsFree: 0, uplinkMbps: 0.1)
            ),
            (
                "departing",
                VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, departingInSeconds: 30, slotsFree: 0)
            ),
        ] {
            registry.update(id, state: state)
            #expect(!registry.hasBusyCapacity(model: "m", zone: "eu", now: 0), "\(name)")
        }
        registry.update(id, state: parked)
        #expect(registry.hasBusyCapacity(model: "m", zone: "eu", now: 0))
        registry.setDraining(id)
        #expect(!registry.hasBusyCapacity(model: "m", zone: "eu", now: 0))
    }

    @Test("A failing car is backed off, so failing fast does not attract work")
    func backoff() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a"), state: parked)
        let job = registry.acquire(id, for: request(), now: 100)!
        registry.finish(job, .failed, now: 100)
        #expect(registry.candidates(model: "m", zone: "eu", now: 100.1).isEmpty)
        #expect(registry.candidates(model: "m", zone: "eu", now: 101).count == 1)
    }

    /// helper-72: a car that answered 200 and then nothing took a third of the requests, 15 s each.
    @Test(
        "After a failure a car takes one job at a time until one succeeds; a job cancelled before its first token clears nothing"
    )
    func probation() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a", slots: 4), state: parked)
        registry.finish(registry.acquire(id, for: request(), now: 100)!, .failed, now: 100)
        let first = registry.acquire(id, for: request(), now: 101)
        #expect(first != nil)
        #expect(registry.acquire(id, for: request(), now: 101) == nil, "one job at a time on probation")
        #expect(registry.candidates(model: "m", zone: "eu", now: 101).isEmpty)
        // Cancelled before its first token (a hedge won elsewhere): still on probation.
        let cancelled = Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true)
        registry.finish(first!, cancelled, now: 101)
        #expect(registry.snapshot(id)?.consecutiveFailures == 1)
        let proving = registry.acquire(id, for: request(), now: 102)!
        #expect(registry.acquire(id, for: request(), now: 102) == nil)
        // A job that produced tokens: off probation, all four slots again.
        registry.finish(
            proving, Outcome(ttftMilliseconds: 200, tpotMilliseconds: 50, outputTokens: 8, succeeded: true), now: 103)
        #expect(registry.snapshot(id)?.consecutiveFailures == 0)
        let jobs = (0..<4).compactMap { _ in registry.acquire(id, for: request(), now: 103) }
        #expect(jobs.count == 4)
    }

    /// Session 31: a runtime's 5xx is blamed on its car (by the gateway, once another car served the
    /// request): a failure at once, its back-off and probation as any other.
    @Test("A runtime error blamed on a car is a failure: backed off, then on probation; a served job clears it")
    func blamedRuntimeError() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a", slots: 4), state: parked)
        registry.blameRuntimeError(id, now: 100)
        #expect(registry.snapshot(id)?.consecutiveFailures == 1)
        #expect(registry.candidates(model: "m", zone: "eu", now: 100.1).isEmpty, "backed off")
        let proving = registry.acquire(id, for: request(), now: 101)!
        #expect(registry.acquire(id, for: request(), now: 101) == nil, "one job at a time on probation")
        registry.finish(
            proving, Outcome(ttftMilliseconds: 200, tpotMilliseconds: 50, outputTokens: 8, succeeded: true), now: 101)
        #expect(registry.snapshot(id)?.consecutiveFailures == 0)
        registry.blameRuntimeError(id, now: 102)
        registry.blameRuntimeError(id, now: 102)
        #expect(registry.snapshot(id)?.consecutiveFailures == 2, "in a row, the back-off grows")
        #expect(registry.candidates(model: "m", zone: "eu", now: 102.9).isEmpty)
    }

    /// helper-131: a car whose runtime failed every job was never named in the gateway's log.
    @Test("Failures in a row are news at 3, 10, 30, 100 and every 100; a served job after 3 or more is too")
    func healthNews() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a", slots: 4), state: parked)
        var news: [Int: CarHealthNews] = [:]
        for n in 1...200 {
            let lease = registry.acquire(id, for: request(), now: Double(n) * 100)!
            news[n] = registry.finish(lease, .failed, now: Double(n) * 100)
        }
        #expect(news.keys.sorted() == [3, 10, 30, 100, 200])
        #expect(news[3] == .failing(inARow: 3, backoffSeconds: 2))
        #expect(news[200] == .failing(inARow: 200, backoffSeconds: 30))
        let served = Outcome(ttftMilliseconds: 200, tpotMilliseconds: 50, outputTokens: 8, succeeded: true)
        #expect(
            registry.finish(registry.acquire(id, for: request(), now: 30_000)!, served, now: 30_001)
                == .recovered(afterFailures: 200))
        // Two failures then a success: nothing to say; a blamed runtime error counts as any failure.
        registry.blameRuntimeError(id, now: 30_002)
        #expect(registry.blameRuntimeError(id, now: 30_003) == nil)
        #expect(registry.finish(registry.acquire(id, for: request(), now: 30_100)!, served, now: 30_101) == nil)
        for t in 0..<2 { registry.blameRuntimeError(id, now: 30_200 + Double(t)) }
        #expect(registry.blameRuntimeError(id, now: 30_203) == .failing(inARow: 3, backoffSeconds: 2))
    }

    @Test("A busy car (its runtime answered 429/503) is left alone a flat while, its failures not counted")
    func busyIsNotFailing() {
        let registry = FleetRegistry()
        let (id, _) = registry.register(descriptor("a"), state: parked)
        var busy = Outcome.failed
        busy.busySeconds = 1
        var now = 100.0
        for _ in 0..<6 {
            let job = registry.acquire(id, for: request(), now: now)!
            registry.finish(job, busy, now: now)
            #expect(registry.candidates(model: "m", zone: "eu", now: now + 0.5).isEmpty)
            now += 1
            // Six failures in a row would back it off 16 s by now; busy stays at the 1 s it asked.
            #expect(registry.candidates(model: "m", zone: "eu", now: now).count == 1)
        }
        #expect(registry.snapshot(id)?.consecutiveFailures == 0)
    }

    @Test("Least-outstanding ranks first; draining cars are skipped; a reconnect replaces the old entry")
    func rankingAndReplacement() {
        let registry = FleetRegistry()
        let (a, _) = registry.register(descriptor("a"), state: parked)
        let (b, _) = registry.register(descriptor("b"), state: parked)
        _ = registry.acquire(a, for: request(), now: 0)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).first?.id == b)
        registry.setDraining(b)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).map(\.id) == [a])
        let (a2, replaced) = registry.register(descriptor("a"), state: parked)
        #expect(replaced == a)
        #expect(registry.count == 2)
        #expect(registry.snapshot(a) == nil && registry.snapshot(a2) != nil)
    }
}

@Suite("Selection in large fleets")
struct LargeFleetTests {
    static func fleet(eu: Int, us: Int, pluggedEvery: Int = 1) -> FleetRegistry {
        let registry = FleetRegistry()
        for i in 0..<eu {
            let state = VehicleState(pluggedIn: i % pluggedEvery == 0, chargePercent: 80, link: .wifi, slotsFree: 2)
            _ = registry.register(descriptor("eu-\(i)"), state: state)
        }
        for i in 0..<us { _ = registry.register(descriptor("us-\(i)", zone: "us", region: "us-east"), state: parked) }
        return registry
    }

    @Test("Sampled selection returns eligible cars of the zone only, as many as asked")
    func sampled() {
        let registry = Self.fleet(eu: 5_000, us: 5_000)
        for _ in 0..<200 {
            let picked = registry.candidates(model: "m", zone: "eu", now: 0, limit: 4)
            #expect(picked.count == 4)
            #expect(picked.allSatisfy { $0.descriptor.zone == "eu" && $0.state.pluggedIn })
        }
    }

    @Test("When almost every car is ineligible, the few eligible ones are still found")
    func needleInHaystack() {
        let registry = Self.fleet(eu: 3_000, us: 0, pluggedEvery: 1_000)  // 3 plugged in of 3,000
        let picked = registry.candidates(model: "m", zone: "eu", now: 0, limit: 4)
        #expect(Set(picked.map(\.descriptor.vehicleID)) == ["eu-0", "eu-1000", "eu-2000"])
    }

    @Test("Load spreads: repeated picks with slots taken cover many cars, least-outstanding first")
    func spreads() {
        let registry = Self.fleet(eu: 1_000, us: 0)
        var used = Set<CarID>()
        for _ in 0..<300 {
            guard let best = registry.candidates(model: "m", zone: "eu", now: 0, limit: 2).first else { continue }
            #expect(best.inFlight == 0)
            #expect(registry.acquire(best.id, for: request(), now: 0) != nil)
            used.insert(best.id)
        }
        #expect(used.count == 300)
    }

    @Test("Removed and replaced cars leave the pools")
    func poolsFollowRemoval() {
        let registry = Self.fleet(eu: 100, us: 0)
        for car in registry.all() { registry.remove(car.id) }
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).isEmpty)
        let (id, _) = registry.register(descriptor("again"), state: parked)
        let (id2, replaced) = registry.register(descriptor("again"), state: parked)
        #expect(replaced == id)
        #expect(registry.candidates(model: "m", zone: "eu", now: 0).map(\.id) == [id2])
    }
}

extension FleetRegistry {
    /// Takes a slot on one named car (tests address cars directly; the gateway acquires choices).
    func acquire(_ id: CarID, for request: RequestProfile, now: Double) -> Lease? {
        self.evaluate(id, for: request, now: now).flatMap { self.acquire($0, for: request, now: now) }
    }
}
