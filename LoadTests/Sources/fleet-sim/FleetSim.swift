import ArgumentParser
import FleetProtocol
import FleetScheduler
import FleetSimulation
import Foundation
import Synchronization

@main
struct FleetSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-sim",
        abstract: "Fleet simulator and scheduler benchmarks (virtual time, no sockets; see LoadTests/README.md).",
        subcommands: [Compare.self, Cost.self])
}

struct FleetOptions: ParsableArguments {
    @Option(help: "Cars connected.") var cars = 1_000
    @Option(help: "Offered load, × fleet capacity.") var load = 0.8
    @Option(help: "Churn, fraction of active cars per 10 minutes.") var churn = 0.02
    @Option(help: "Departures announced (true) or sudden (false).") var notice = true
    @Flag(help: "One hardware class and one link type (the control fleet).") var homogeneous = false
    @Option(help: "Central capacity per zone, as a share of the zone's car slots (0: no central).") var central = 0.05
    @Option(help: "Scorer: candidates probed per decision.") var probes = 16
    @Option(help: "Scorer: σ of doubt charged to little-observed cars.") var riskAversion = LatencyPredictor()
        .riskAversion
    @Option(help: "Comma-separated seeds.") var seeds = "1,2,3,4,5"
    @Option(help: "Measured seconds of virtual time (after 120 s of warm-up).") var seconds = 480.0
    @Option(help: "Comma-separated policies (default: all).") var policies = SchedulingPolicy.allCases.map(\.rawValue)
        .joined(separator: ",")

    func parameters(policy: SchedulingPolicy, seed: UInt64, load: Double? = nil) -> SimulationParameters {
        var p = SimulationParameters()
        p.cars = self.cars
        p.load = load ?? self.load
        p.churnPer10Minutes = self.churn
        p.departureNotice = self.notice
        p.homogeneous = self.homogeneous
        p.seed = seed
        p.measuredSeconds = self.seconds
        p.policy = policy
        p.centralShareOfSlots = self.central
        p.probes = self.probes
        p.riskAversion = self.riskAversion
        return p
    }

    func parsedSeeds() throws -> [UInt64] {
        let seeds = self.seeds.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !seeds.isEmpty else { throw ValidationError("--seeds: no seed in '\(self.seeds)'") }
        return seeds
    }

    func parsedPolicies() throws -> [SchedulingPolicy] {
        try self.policies.split(separator: ",").map { name in
            guard let policy = SchedulingPolicy(rawValue: String(name)) else {
                throw ValidationError(
                    "--policies: '\(name)' is not one of \(SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            return policy
        }
    }
}

/// Runs jobs on both cores.
func parallel<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    let results = Mutex([T?](repeating: nil, count: count))
    DispatchQueue.concurrentPerform(iterations: count) { i in
        let value = body(i)
        results.withLock { $0[i] = value }
    }
    return results.withLock { $0.map { $0! } }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Every policy on the same seeds: TTFT, TPOT, SLO attainment, central use, failures, privacy; optionally goodput by bisection."
    )

    @OptionGroup var fleet: FleetOptions
    @Flag(
        help:
            "Also find each policy's goodput (highest load with ≥ 90 % meeting TTFT ≤ 1 s and TPOT ≤ 100 ms) by bisection."
    )
    var goodput = false
    @Option(help: "Bisection steps for goodput.") var steps = 6

    func run() throws {
        let seeds = try self.fleet.parsedSeeds()
        let policies = try self.fleet.parsedPolicies()
        let fleet = self.fleet
        print(
            "fleet-sim compare: \(fleet.cars) cars, load \(fleet.load)×, churn \(fleet.churn * 100) %/10 min, notice \(fleet.notice), central \(fleet.central * 100) % of slots, \(fleet.homogeneous ? "homogeneous control" : "heterogeneous"), seeds \(seeds.map(String.init).joined(separator: ",")), \(Int(fleet.seconds)) s measured"
        )
        let jobs = policies.flatMap { policy in seeds.map { (policy, $0) } }
        let started = Date()
        let results = parallel(jobs.count) { i in
            Simulation(fleet.parameters(policy: jobs[i].0, seed: jobs[i].1)).run()
        }
        var goodputs: [SchedulingPolicy: [Double]] = [:]
        if self.goodput {
            let steps = self.steps
            let found = parallel(jobs.count) { i in
                bisectGoodput(steps: steps) { load in
                    Simulation(fleet.parameters(policy: jobs[i].0, seed: jobs[i].1, load: load)).run().sloAttainment
                }
            }
            for (i, job) in jobs.enumerated() { goodputs[job.0, default: []].append(found[i]) }
        }
        print("")
        print(
            "| policy | TTFT p50 ms | TTFT p99 ms | TTFT p99.9 ms | TPOT p50 ms | TPOT p99 ms | SLO met | goodput (× capacity) | central | failed | lost | privacy violations | decision µs | predicted ÷ observed TTFT p50 |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for policy in policies {
            let runs = results.enumerated().filter { jobs[$0.offset].0 == policy }.map(\.element)
            func stat(_ f: (SimulationResult) -> Double, _ format: String = "%.0f") -> String {
                let values = runs.map(f).sorted()
                let median = values[values.count / 2]
                return String(format: "\(format) (\(format)–\(format))", median, values.first!, values.last!)
            }
            let gp =
                goodputs[policy].map { v -> String in
                    let s = v.sorted()
                    return String(format: "%.2f (%.2f–%.2f)", s[s.count / 2], s.first!, s.last!)
                } ?? "—"
            print(
                "| \(policy.rawValue) | \(stat { SimulationResult.percentile($0.ttftMs, 0.5) }) | \(stat { SimulationResult.percentile($0.ttftMs, 0.99) }) | \(stat { SimulationResult.percentile($0.ttftMs, 0.999) }) | \(stat({ SimulationResult.percentile($0.tpotMs, 0.5) }, "%.1f")) | \(stat({ SimulationResult.percentile($0.tpotMs, 0.99) }, "%.1f")) | \(stat({ $0.sloAttainment * 100 }, "%.1f")) % | \(gp) | \(stat({ $0.centralFraction * 100 }, "%.1f")) % | \(runs.map(\.failed).reduce(0, +)) | \(runs.map(\.lost).reduce(0, +)) | \(runs.map(\.privacyViolations).reduce(0, +)) | \(stat({ $0.decisionMicroseconds }, "%.2f")) | \(stat({ SimulationResult.percentile($0.predictedOverObservedTTFT, 0.5) }, "%.2f")) |"
            )
        }
        let requests = results.map(\.requests).reduce(0, +)
        print("")
        print(
            String(
                format: "%d runs, %d measured requests, %.0f s wall; medians over seeds (min–max)", results.count,
                requests, Date().timeIntervalSince(started)))
    }
}

/// The highest load (× capacity) whose SLO attainment is ≥ 90 %, by bisection on [0.1, 2.0].
func bisectGoodput(steps: Int, _ attainment: (Double) -> Double) -> Double {
    var low = 0.1
    var high = 2.0
    if attainment(low) < 0.9 { return 0 }
    for _ in 0..<steps {
        let mid = (low + high) / 2
        if attainment(mid) >= 0.9 { low = mid } else { high = mid }
    }
    return low
}
