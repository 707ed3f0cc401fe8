import FleetGeo
package import FleetProtocol
import Foundation

/// Everything a run will do, drawn from the scenario's seed before it starts: the cars, every
/// client request (when, from where, what) and every churn event. Pure: no clock, no I/O.
package struct RunPlan: Sendable {
    /// One simulated car.
    package struct Car: Sendable, Hashable {
        package var index: Int
        package var vehicleID: String
        package var region: String
        package var hardware: HardwareClass
        package var state: VehicleState
        package var policy: OwnerPolicy
        package var slowdown: Double
    }

    /// One client request.
    package struct Request: Sendable, Hashable {
        package var id: String
        /// Seconds after the start of load.
        package var at: Double
        package var measured: Bool
        package var country: String
        package var address: String
        package var model: String
        package var promptTokens: Int
        package var maxTokens: Int
        package var streaming: Bool
        /// Cancel after this many content tokens (nil: read to the end).
        package var cancelAfter: Int?
        /// Earlier turns sent with the request (0: a single turn).
        package var priorTurns: Int
        /// The seed sent in the body, so the client knows every token it should receive.
        package var seed: Int

        package init(
            id: String, at: Double, measured: Bool, country: String, address: String, model: String,
            promptTokens: Int, maxTokens: Int, streaming: Bool, cancelAfter: Int?, priorTurns: Int, seed: Int
        ) {
            self.id = id
            self.at = at
            self.measured = measured
            self.country = country
            self.address = address
            self.model = model
            self.promptTokens = promptTokens
            self.maxTokens = maxTokens
            self.streaming = streaming
            self.cancelAfter = cancelAfter
            self.priorTurns = priorTurns
            self.seed = seed
        }
    }

    /// One churn event.
    package struct ChurnEvent: Sendable, Hashable {
        package var at: Double
        package var kind: Scenario.ChurnKind
        package var car: Int
        package var noticeSeconds: Int
        package var rejoinAfter: Double?
    }

    package var cars: [Car]
    package var requests: [Request]
    package var churn: [ChurnEvent]

    /// Draws the plan.
    package init(scenario: Scenario) {
        var rng = SplitMix64(seed: scenario.seed)
        self.cars = Self.cars(scenario, &rng)
        self.requests = Self.requests(scenario, &rng)
        self.churn = Self.churn(scenario, cars: self.cars, &rng)
    }

    static func cars(_ scenario: Scenario, _ rng: inout SplitMix64) -> [Car] {
        var cars: [Car] = []
        for group in scenario.fleet {
            for _ in 0..<group.count {
                let index = cars.count
                let charge = group.charge.lowerBound + Int(rng.below(UInt64(group.charge.count)))
                let state = VehicleState(
                    pluggedIn: rng.unit() < group.pluggedIn, chargePercent: charge,
                    link: rng.pick(group.links), slotsFree: 0)
                let slowdown = group.slowdown.lowerBound + rng.unit() * (group.slowdown.upperBound - group.slowdown.lowerBound)
                cars.append(
                    Car(
                        index: index, vehicleID: "lt-car-\(index)", region: group.region,
                        hardware: rng.pick(group.hardware), state: state, policy: group.policy, slowdown: slowdown))
            }
        }
        return cars
    }

    /// Arrival times over warm-up + duration, then each request's parameters.
    static func requests(_ scenario: Scenario, _ rng: inout SplitMix64) -> [Request] {
        let total = scenario.warmup + scenario.duration
        let clients = scenario.clients
        var out: [Request] = []
        var t = 0.0
        while true {
            // Thinning (Lewis–Shedler) against the largest rate makes every arrival process exact.
            let peak = Self.peakRate(clients.arrivals)
            t += -log(1 - rng.unit()) / peak
            if t >= total { break }
            if rng.unit() * peak > Self.rate(clients.arrivals, at: t, total: total) { continue }
            let origin = rng.pick(clients.geo.map { ($0, $0.share) })
            let maxTokens = rng.logNormal(clients.maxTokens)
            let cancel = rng.unit() < clients.cancelShare
            out.append(
                Request(
                    id: "lt-\(scenario.seed)-\(out.count)", at: t, measured: t >= scenario.warmup,
                    country: origin.country, address: Self.address(in: origin.ranges, &rng),
                    model: rng.pick(clients.models), promptTokens: rng.logNormal(clients.promptTokens),
                    maxTokens: maxTokens, streaming: rng.unit() < clients.streamingShare,
                    cancelAfter: cancel ? Int(rng.below(UInt64(max(1, maxTokens)))) : nil,
                    priorTurns: rng.unit() < clients.multiTurnShare ? 2 * (1 + Int(rng.below(3))) : 0,
                    seed: Int(rng.below(1 << 40))))
        }
        return out
    }

    static func peakRate(_ arrivals: Scenario.Arrivals) -> Double {
        switch arrivals {
        case .poisson(let rate): rate
        case .ramp(let from, let to): max(from, to)
        case .burst(let rate, let burstRate, _, _): max(rate, burstRate)
        }
    }

    /// The arrival rate at `t` seconds into the load.
    package static func rate(_ arrivals: Scenario.Arrivals, at t: Double, total: Double) -> Double {
        switch arrivals {
        case .poisson(let rate): return rate
        case .ramp(let from, let to): return from + (to - from) * min(1, t / total)
        case .burst(let rate, let burstRate, let every, let length):
            return t.truncatingRemainder(dividingBy: every) < length ? burstRate : rate
        }
    }

    /// A random host address inside one of `ranges` (IPv4 CIDR blocks).
    static func address(in ranges: [String], _ rng: inout SplitMix64) -> String {
        guard !ranges.isEmpty, let block = IPv4Block(ranges[Int(rng.below(UInt64(ranges.count)))]) else {
            return "127.0.0.1"
        }
        return block.address(UInt32(truncatingIfNeeded: rng.next()))
    }

    /// Churn events: fixed-time rules pick `count` cars, rate rules a Poisson process per matching car set.
    static func churn(_ scenario: Scenario, cars: [Car], _ rng: inout SplitMix64) -> [ChurnEvent] {
        let total = scenario.warmup + scenario.duration
        var events: [ChurnEvent] = []
        var taken = Set<Int>()
        for rule in scenario.churn {
            let pool = cars.filter { rule.region == nil || $0.region == rule.region }.map(\.index)
            func pickCar() -> Int? {
                let free = pool.filter { !taken.contains($0) }
                guard !free.isEmpty else { return nil }
                let car = free[Int(rng.below(UInt64(free.count)))]
                if rule.rejoinAfter == nil { taken.insert(car) }
                return car
            }
            var times: [Double] = []
            if let at = rule.at {
                times = Array(repeating: at, count: rule.count)
            } else if let share = rule.ratePer10Minutes, share > 0 {
                let rate = share * Double(pool.count) / 600
                var t = -log(1 - rng.unit()) / rate
                while t < total {
                    times.append(t)
                    t += -log(1 - rng.unit()) / rate
                }
            }
            for at in times {
                guard let car = pickCar() else { break }
                events.append(
                    ChurnEvent(
                        at: at, kind: rule.kind, car: car, noticeSeconds: rule.noticeSeconds,
                        rejoinAfter: rule.rejoinAfter))
            }
        }
        return events.sorted { ($0.at, $0.car) < ($1.at, $1.car) }
    }
}

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(self.next() >> 11) / Double(1 << 53) }

    /// Uniform in 0..<n.
    mutating func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : self.next() % n }

    /// One of `choices` by weight.
    mutating func pick<T>(_ choices: [(T, Double)]) -> T {
        let total = choices.reduce(0) { $0 + $1.1 }
        var x = self.unit() * total
        for (value, weight) in choices {
            if x < weight { return value }
            x -= weight
        }
        return choices[choices.count - 1].0
    }

    /// A standard normal draw (Box–Muller).
    mutating func normal() -> Double {
        let u1 = max(self.unit(), 1e-12)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * self.unit())
    }

    /// A clamped lognormal integer.
    mutating func logNormal(_ d: Scenario.LogNormal) -> Int {
        min(d.max, max(d.min, Int((d.median * exp(d.sigma * self.normal())).rounded())))
    }
}
