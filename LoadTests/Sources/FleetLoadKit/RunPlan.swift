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
        /// The link its tunnel goes over (``LinkEmulator``); its type is in ``state``.
        package var link: LinkProfile
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
        /// The seed sent in the body, so the client knows every token it should receive.
        package var seed: Int
        /// Over an HTTP/1.1 keep-alive connection instead of HTTP/2.
        package var http1 = false
        /// The conversation: the index of its first turn (this request's own index for a first turn).
        package var conversation: Int
        /// 1 for a first turn; turn n carries turns 1…n−1 with the answers the client actually received.
        package var turn = 1
        /// The index of the previous turn (nil for a first turn): this request leaves at its time or
        /// once that answer has closed, whichever is later.
        package var previous: Int?
        /// Whether a later turn continues from this one (the client keeps its answer until then).
        package var hasNextTurn = false

        package init(
            id: String, at: Double, measured: Bool, country: String, address: String, model: String,
            promptTokens: Int, maxTokens: Int, streaming: Bool, cancelAfter: Int?, seed: Int, conversation: Int
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
            self.seed = seed
            self.conversation = conversation
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
                let pluggedIn = rng.unit() < group.pluggedIn
                let link = rng.pick(group.links)  // drawn in this order since the first plans
                let state = VehicleState(
                    pluggedIn: pluggedIn, chargePercent: charge, link: link.type, slotsFree: 0,
                    uplinkMbps: link.profile.uplinkMbps)
                let slowdown = group.slowdown.lowerBound + rng.unit() * (group.slowdown.upperBound - group.slowdown.lowerBound)
                cars.append(
                    Car(
                        index: index, vehicleID: "lt-car-\(index)", region: group.region,
                        hardware: rng.pick(group.hardware), state: state, policy: group.policy, slowdown: slowdown,
                        link: link.profile))
            }
        }
        return cars
    }

    /// At most this many turns per conversation, and at least this long between a turn's planned
    /// time and the next one's (a user reads the answer first).
    static let maxTurns = 6
    static let thinkSeconds = 3.0

    /// Arrival times over warm-up + duration, then each request's parameters. A `multiTurnShare`
    /// of the arrivals continue an earlier conversation (one of the last 256 still open, from
    /// the same address, model and country) instead of starting one; with none open, they start one.
    static func requests(_ scenario: Scenario, _ rng: inout SplitMix64) -> [Request] {
        let total = scenario.warmup + scenario.duration
        let clients = scenario.clients
        // PROXY v2: connections are per origin address, so each origin draws a few addresses.
        let pools: [[String]]? =
            clients.originVia == .proxyV2
            ? clients.geo.map { origin in (0..<clients.connections).map { _ in Self.address(in: origin.ranges, &rng) } }
            : nil
        var out: [Request] = []
        var open: [(root: Int, last: Int, at: Double, turns: Int)] = []
        var t = 0.0
        while true {
            // Thinning (Lewis–Shedler) against the largest rate makes every arrival process exact.
            let peak = Self.peakRate(clients.arrivals)
            t += -log(1 - rng.unit()) / peak
            if t >= total { break }
            if rng.unit() * peak > Self.rate(clients.arrivals, at: t, total: total) { continue }
            // Draws in the order of the first plans, so a seed keeps its times, texts and cancellations.
            let originIndex = rng.pick(clients.geo.indices.map { ($0, clients.geo[$0].share) })
            let origin = clients.geo[originIndex]
            let maxTokens = rng.logNormal(clients.maxTokens)
            let cancel = rng.unit() < clients.cancelShare
            let address: String
            if let pool = pools?[originIndex], !pool.isEmpty {
                address = pool[Int(rng.below(UInt64(pool.count)))]
            } else {
                address = Self.address(in: origin.ranges, &rng)
            }
            let index = out.count
            var request = Request(
                id: "lt-\(scenario.seed)-\(index)", at: t, measured: t >= scenario.warmup, country: origin.country,
                address: address, model: rng.pick(clients.models), promptTokens: rng.logNormal(clients.promptTokens),
                maxTokens: maxTokens, streaming: rng.unit() < clients.streamingShare,
                cancelAfter: cancel ? Int(rng.below(UInt64(max(1, maxTokens)))) : nil, seed: 0, conversation: index)
            let laterTurn = rng.unit() < clients.multiTurnShare
            let eligible = laterTurn ? open.indices.filter { t - open[$0].at >= Self.thinkSeconds } : []
            let pick = laterTurn ? Int(rng.below(UInt64(max(1, eligible.count)))) : 0
            request.seed = Int(rng.below(1 << 40))
            request.http1 = clients.http1Share > 0 && rng.unit() < clients.http1Share
            if !eligible.isEmpty {
                let slot = eligible[pick]
                let conversation = open[slot]
                let root = out[conversation.root]
                request.conversation = root.conversation
                request.country = root.country
                request.address = root.address
                request.model = root.model
                request.turn = conversation.turns + 1
                request.previous = conversation.last
                out[conversation.last].hasNextTurn = true
                if request.turn >= Self.maxTurns {
                    open.remove(at: slot)
                } else {
                    open[slot] = (conversation.root, index, t, request.turn)
                }
            } else {
                open.append((index, index, t, 1))
                if open.count > 256 { open.removeFirst() }
            }
            out.append(request)
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
