import FleetProtocol
import FleetScheduler
import FleetSimulation
import Testing

@Suite("Latency predictor, policies and the fleet simulator")
struct PredictorTests {
    /// Reports a job on `car` whose compute ran `slowdown`× the advertised rates.
    static func serve(_ registry: FleetRegistry, _ car: CarID, slowdown: Double, now: Double) {
        let req = request(prompt: 600)
        guard let job = registry.acquire(car, for: req, now: now) else { return }
        // hw4 advertises 1,200 prompt tok/s and 20 tok/s: 600 tokens → 500 ms, 50 ms per token.
        let outcome = Outcome(
            ttftMilliseconds: 500 * slowdown + 55, tpotMilliseconds: 50 * slowdown,
            promptTokens: 600, outputTokens: 100, succeeded: true)
        registry.finish(job, outcome, now: now + 1)
    }

    @Test("Outcomes teach the predictor a car's hidden slowdown, and predictive routing follows it")
    func learnsSlowdown() {
        let registry = FleetRegistry(policy: .predictive)
        let slow = registry.register(descriptor("slow"), state: parked).id
        let fast = registry.register(descriptor("fast"), state: parked).id
        for i in 0..<8 {
            Self.serve(registry, slow, slowdown: 3, now: Double(i))
            Self.serve(registry, fast, slowdown: 1, now: Double(i))
        }
        let learned = try! #require(registry.snapshot(slow)?.learned["m"])
        #expect(abs(learned.decodeSlowdown - 3) < 0.3, "decode slowdown \(learned.decodeSlowdown)")
        #expect(learned.prefillSlowdown > 2, "prefill slowdown \(learned.prefillSlowdown)")
        #expect(abs(registry.snapshot(fast)!.learned["m"]!.decodeSlowdown - 1) < 0.1)
        let decision = registry.decide(request(prompt: 600), now: 10)
        #expect(decision.cars.first == fast)
        #expect(decision.choices[0].predictedTTFTMilliseconds < decision.choices[1].predictedTTFTMilliseconds)
    }

    @Test("A car that advertises 1e9 prompt tok/s while 55× slower gets under 20 % of requests once it has served 10")
    func liarLoses() {
        let registry = FleetRegistry(policy: .predictive)
        var liar = descriptor("liar")
        liar.models = [ModelOffer(id: "m", decodeTokensPerSecond: 1e9, prefillTokensPerSecond: 1e9)]
        let liarID = registry.register(liar, state: parked).id
        let honest = (0..<9).map { registry.register(descriptor("h\($0)"), state: parked).id }
        // Claims are bounded by the hardware class: 4 × hw4's 1,200 prompt tok/s.
        let bounded = try! #require(registry.evaluate(liarID, for: request(prompt: 600), now: 0))
        #expect(bounded.predictedTTFTMilliseconds > 100, "bounded claim: \(bounded.predictedTTFTMilliseconds) ms")
        var now = 0.0
        // Serves a request on `id` as it really is: hw4 at 1,200 prompt tok/s and 20 tok/s, the liar 55× slower.
        func serve(_ choice: Choice) {
            let req = request(prompt: 600)
            guard let lease = registry.acquire(choice, for: req, now: now) else { return }
            let slow = choice.car == liarID ? 55.0 : 1.0
            now += 1
            registry.finish(
                lease,
                Outcome(
                    ttftMilliseconds: 15 + 500 * slow, tpotMilliseconds: 50 * slow, promptTokens: 600,
                    outputTokens: 100, succeeded: true), now: now)
        }
        for _ in 0..<10 { serve(registry.evaluate(liarID, for: request(prompt: 600), now: now)!) }
        var picks = 0
        for _ in 0..<100 {
            let choice = try! #require(registry.decide(request(prompt: 600), now: now).choices.first)
            if choice.car == liarID { picks += 1 }
            serve(choice)
        }
        #expect(picks < 20, "the liar got \(picks) of 100 after serving 10")
        #expect(Set(honest).count == 9)
        let learned = try! #require(registry.snapshot(liarID)?.learned["m"])
        #expect(learned.prefillSlowdown > 50, "observation replaces the claim: \(learned.prefillSlowdown)×")
    }

    @Test("Central's predicted TTFT and TPOT follow its outcomes, from the configured prior")
    func centralLearns() {
        var central = CentralEstimate(baseTTFTMilliseconds: 300, prefillTokensPerSecond: 20_000, tpotMilliseconds: 20)
        #expect(abs(central.predict(promptTokens: 2_000).ttft - 400) < 1)
        for _ in 0..<12 {
            // A central that queues: three times the configured TTFT, twice the time per token.
            central.observe(
                Outcome(ttftMilliseconds: 1_200, tpotMilliseconds: 40, promptTokens: 2_000, outputTokens: 50,
                    succeeded: true), promptTokens: 2_000)
        }
        let learned = central.predict(promptTokens: 2_000)
        #expect(abs(learned.ttft / 1_200 - 1) < 0.1, "\(learned.ttft)")
        #expect(abs(learned.tpot / 40 - 1) < 0.1, "\(learned.tpot)")
        #expect(central.option(promptTokens: 2_000, hasRoom: true).predictedTTFTMilliseconds == learned.ttft)
    }

    @Test("A new car is charged its uncertainty until observed")
    func uncertainty() {
        let registry = FleetRegistry(policy: .predictive)
        let known = registry.register(descriptor("known"), state: parked).id
        for i in 0..<10 { Self.serve(registry, known, slowdown: 1, now: Double(i)) }
        let new = registry.register(descriptor("new"), state: parked).id
        let decision = registry.decide(request(prompt: 600), now: 20)
        let predicted = Dictionary(
            uniqueKeysWithValues: decision.choices.map { ($0.car!, $0.predictedTTFTMilliseconds) })
        #expect(predicted[new]! > predicted[known]!)
    }

    @Test("Central goes first by one spill rule for every policy; predictive also by its prediction when told to")
    func centralBySLO() {
        let central = CentralOption(predictedTTFTMilliseconds: 200, predictedTPOTMilliseconds: 15, hasRoom: true)
        // hw4 advertises 1,200 prompt tok/s: 6,000 tokens take 5 s even as advertised; 900 take
        // 750 ms as advertised, but ~1.1 s with the doubt charged to a car never observed.
        let long = RequestProfile(model: "m", zone: "eu", promptTokens: 6_000, ttftObjectiveMilliseconds: 1_000)
        let medium = RequestProfile(model: "m", zone: "eu", promptTokens: 900, ttftObjectiveMilliseconds: 1_000)
        let short = RequestProfile(model: "m", zone: "eu", promptTokens: 100, ttftObjectiveMilliseconds: 1_000)
        for policy in SchedulingPolicy.allCases {
            let registry = FleetRegistry(policy: policy)
            _ = registry.register(descriptor("a"), state: parked)
            let forShort = registry.decide(short, central: central, now: 0)
            #expect(forShort.choices.first?.route != .central, "\(policy)")
            #expect(forShort.choices.last?.route == .central, "central stays a later choice for \(policy)")
            #expect(registry.decide(long, central: central, now: 0).choices.first?.route == .central, "\(policy)")
            #expect(registry.decide(medium, central: central, now: 0).choices.first?.route != .central, "\(policy)")
        }
        var predictor = LatencyPredictor()
        predictor.centralByPrediction = true
        let byPrediction = FleetRegistry(policy: .predictive, predictor: predictor)
        _ = byPrediction.register(descriptor("a"), state: parked)
        #expect(byPrediction.decide(medium, central: central, now: 0).choices.first?.route == .central)
        let empty = FleetRegistry()
        #expect(empty.decide(short, central: central, now: 0).choices.map(\.route) == [.central])
        let full = CentralOption(predictedTTFTMilliseconds: 200, predictedTPOTMilliseconds: 15, hasRoom: false)
        #expect(empty.decide(short, central: full, now: 0).choices.isEmpty)
    }

    @Test("A car announcing its departure gets only jobs that end before it leaves")
    func departure() {
        let registry = FleetRegistry()
        let state = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, departingInSeconds: 300, slotsFree: 2)
        _ = registry.register(descriptor("leaving"), state: state, now: 1_000)
        let short = RequestProfile(model: "m", zone: "eu", promptTokens: 100, expectedOutputTokens: 100)  // ~5 s
        let long = RequestProfile(model: "m", zone: "eu", promptTokens: 100, expectedOutputTokens: 8_000)  // ~400 s
        #expect(registry.decide(short, now: 1_000).cars.count == 1)
        #expect(registry.decide(long, now: 1_000).cars.isEmpty)
        #expect(registry.decide(short, now: 1_190).cars.isEmpty, "inside the last 120 s")
    }

    @Test("Cars that leave unannounced raise the churn hazard; announced ones do not")
    func churnHazard() {
        let registry = FleetRegistry()
        var ids = (0..<100).map { registry.register(descriptor("c\($0)"), state: parked, now: 0).id }
        for id in ids.prefix(10) {
            registry.setDraining(id)
            registry.remove(id, now: 600)
        }
        #expect(registry.churnHazard == 0)
        ids.removeFirst(10)
        for id in ids.prefix(10) { registry.remove(id, now: 600) }
        #expect(registry.churnHazard > 0)
    }

    @Test("A stale car id never reaches the car that later took its slot")
    func staleID() {
        let registry = FleetRegistry()
        let old = registry.register(descriptor("a"), state: parked).id
        registry.remove(old)
        let new = registry.register(descriptor("b"), state: parked).id
        #expect(old != new)
        #expect(registry.snapshot(old) == nil)
        #expect(registry.acquire(old, for: request(), now: 0) == nil)
        #expect(registry.snapshot(new)?.descriptor.vehicleID == "b")
    }

    @Test(
        "Every policy stays in the zone, returns eligible cars only, and spreads work",
        arguments: SchedulingPolicy.allCases)
    func policies(_ policy: SchedulingPolicy) {
        let registry = FleetRegistry(policy: policy, seed: 42)
        for i in 0..<200 { _ = registry.register(descriptor("eu\(i)", slots: 1), state: parked) }
        for i in 0..<200 {
            _ = registry.register(descriptor("us\(i)", zone: "us", region: "us-east", slots: 1), state: parked)
        }
        let unplugged = VehicleState(pluggedIn: false, chargePercent: 80, link: .wifi, slotsFree: 1)
        for i in 0..<50 { _ = registry.register(descriptor("off\(i)"), state: unplugged) }
        var used = Set<CarID>()
        for _ in 0..<150 {
            let decision = registry.decide(request(), now: 0)
            for id in decision.cars {
                let car = try! #require(registry.snapshot(id))
                #expect(car.descriptor.zone == "eu" && car.state.pluggedIn)
            }
            guard let choice = decision.choices.first, let first = choice.car,
                registry.acquire(choice, for: request(), now: 0) != nil
            else {
                Issue.record("\(policy): no car while 200 are free")
                return
            }
            used.insert(first)
        }
        // Slots are single, so each acquired car leaves the pool: 150 distinct cars.
        #expect(used.count == 150)
    }

    @Test("Least-outstanding takes the least-loaded bucket; round-robin walks the pool in order")
    func baselineOrder() {
        let lo = FleetRegistry(policy: .leastOutstanding)
        let ids = (0..<4).map { lo.register(descriptor("c\($0)", slots: 4), state: parked).id }
        for (n, id) in ids.enumerated() { for _ in 0..<(3 - n) { _ = lo.acquire(id, for: request(), now: 0) } }
        #expect(lo.decide(request(), now: 0).cars.first == ids[3])

        let rr = FleetRegistry(policy: .roundRobin)
        let rrIDs = (0..<3).map { rr.register(descriptor("r\($0)"), state: parked).id }
        let order = (0..<6).compactMap { _ in rr.decide(request(), now: 0, limit: 1).cars.first }
        #expect(Set(order.prefix(3)) == Set(rrIDs))
        #expect(Array(order.prefix(3)) == Array(order.suffix(3)))
    }

    @Test(
        "Simulator smoke, 1,000 cars: no privacy or eligibility violation and no lost request, every policy",
        arguments: SchedulingPolicy.allCases)
    func simulatorSmoke(_ policy: SchedulingPolicy) {
        var parameters = SimulationParameters()
        parameters.cars = 1_000
        parameters.policy = policy
        parameters.warmupSeconds = 30
        parameters.measuredSeconds = 60
        parameters.departureNotice = false
        parameters.churnPer10Minutes = 0.05
        let result = Simulation(parameters).run()
        #expect(result.requests > 5_000)
        #expect(result.privacyViolations == 0)
        #expect(result.eligibilityViolations == 0)
        #expect(result.lost == 0)
        #expect(result.failed == 0)
        #expect(result.ttftMs.allSatisfy { $0.isFinite })
    }
}
