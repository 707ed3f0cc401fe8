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
        subcommands: [Compare.self, Cost.self, Replicas.self, PrefixCost.self])
}

struct FleetOptions: ParsableArguments {
    @Option(help: "Parameter set: tuning or held-out (see LoadTests/README.md).") var set = ParameterSet.tuning.rawValue
    @Option(help: "Cars connected.") var cars = 1_000
    @Option(help: "Offered load, × fleet capacity; comma-separated for a sweep.") var load = "0.8"
    @Option(help: "Churn, fraction of active cars per 10 minutes.") var churn = 0.02
    @Option(help: "Departures announced (true) or sudden (false, noticed after missed PINGs).") var notice = true
    @Flag(help: "One hardware class and one link type (the control fleet).") var homogeneous = false
    @Option(help: "Central capacity per zone, as a share of the zone's car slots (0: no central).") var central = 0.05
    @Option(help: "Candidates probed per decision (every probing policy).") var probes = 16
    @Option(help: "Scorer: σ of doubt charged to little-observed cars.") var riskAversion = LatencyPredictor()
        .riskAversion
    @Flag(help: "Give the scheduler the true prompt size and class median output (the old, leaky estimates).")
    var exactEstimates = false
    @Option(help: "Comma-separated seeds.") var seeds = "1,2,3,4,5"
    @Flag(help: "The multi-turn workload: conversations of 2–20 turns with think times (issue #14).")
    var conversations = false
    @Option(help: "Measured seconds of virtual time (after the warm-up).") var seconds = 480.0
    @Option(help: "Warm-up seconds of virtual time.") var warmup = 120.0
    @Option(
        help:
            "Comma-separated policies, each optionally with +nolearn, +risk=X, +probes=N (e.g. predictive+probes=4). Default: every policy."
    )
    var policies = SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ",")

    func parameters(_ variant: Variant, seed: UInt64, load: Double) throws -> SimulationParameters {
        guard let set = ParameterSet(rawValue: self.set) else {
            throw ValidationError("--set: '\(self.set)' is not one of \(ParameterSet.allCases.map(\.rawValue))")
        }
        var p = SimulationParameters()
        p.set = set
        p.cars = self.cars
        p.load = load
        p.churnPer10Minutes = self.churn
        p.departureNotice = self.notice
        p.homogeneous = self.homogeneous
        p.seed = seed
        p.measuredSeconds = self.seconds
        p.warmupSeconds = self.warmup
        p.policy = variant.policy
        p.centralShareOfSlots = self.central
        p.probes = variant.probes ?? self.probes
        p.riskAversion = variant.riskAversion ?? self.riskAversion
        p.learning = variant.learning
        p.scorer = variant.scorer
        p.exactEstimates = self.exactEstimates
        p.conversations = self.conversations
        return p
    }

    func parsedSeeds() throws -> [UInt64] {
        let seeds = self.seeds.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !seeds.isEmpty else { throw ValidationError("--seeds: no seed in '\(self.seeds)'") }
        return seeds
    }

    func parsedLoads() throws -> [Double] {
        let loads = self.load.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !loads.isEmpty, loads.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--load: no positive load in '\(self.load)'")
        }
        return loads
    }

    func parsedPolicies() throws -> [Variant] {
        try self.policies.split(separator: ",").map { try Variant(String($0)) }
    }
}

/// A policy with scorer settings of its own (the ablations): `predictive+nolearn`,
/// `predictive+risk=0`, `predictive+probes=4`.
struct Variant: Sendable, Hashable {
    var name: String
    var policy: SchedulingPolicy
    var learning = true
    var riskAversion: Double?
    var probes: Int?
    var scorer: [String: Double] = [:]
    static let scorerKeys = [
        "decodeWeight", "prefillContention", "fitMargin", "learningRate", "tpotMissPenalty", "centralByPrediction",
        "affinity", "prefixCreditWeight",
    ]

    init(_ spec: String) throws {
        self.name = spec
        var parts = spec.split(separator: "+").map(String.init)
        let base = parts.removeFirst()
        guard let policy = SchedulingPolicy(rawValue: base) else {
            throw ValidationError(
                "--policies: '\(base)' is not one of \(SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.policy = policy
        for part in parts {
            if part == "nolearn" {
                self.learning = false
            } else if part.hasPrefix("risk="), let value = Double(part.dropFirst(5)) {
                self.riskAversion = value
            } else if part.hasPrefix("probes="), let value = Int(part.dropFirst(7)), value > 0 {
                self.probes = value
            } else if let eq = part.firstIndex(of: "="), Self.scorerKeys.contains(String(part[..<eq])),
                let value = Double(part[part.index(after: eq)...])
            {
                self.scorer[String(part[..<eq])] = value
            } else {
                throw ValidationError(
                    "--policies: '\(part)' in '\(spec)' is not nolearn, risk=X, probes=N or one of \(Self.scorerKeys)=X")
            }
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
    /// The multi-turn table: turns ≥ 2 that landed on a car holding their prefix, their TTFT,
    /// and the spread of per-car utilisation (what a hit costs the balance of the fleet).
    static func printConversations(variants: [Variant], jobs: [Variant], results: [SimulationResult]) {
        print("")
        print(
            "| policy | turns ≥ 2 on a car holding their prefix | TTFT p50 ms, turns ≥ 2 | TTFT p99 ms, turns ≥ 2 | TTFT p50 ms, turn 1 | prefill tokens saved | utilisation p10 / p50 / p90 | utilisation CV |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for variant in variants {
            let runs = results.enumerated().filter { jobs[$0.offset] == variant }.map(\.element)
            func stat(_ f: (SimulationResult) -> Double, _ format: String = "%.0f") -> String {
                let values = runs.map(f).sorted()
                let median = values[values.count / 2]
                guard values.count > 1 else { return String(format: format, median) }
                return String(format: "\(format) (\(format)–\(format))", median, values.first!, values.last!)
            }
            let p = SimulationResult.percentile
            print(
                "| \(variant.name) | \(stat({ $0.laterTurnHitShare * 100 }, "%.1f")) % | \(stat { p($0.laterTurnTTFTMs, 0.5) }) | \(stat { p($0.laterTurnTTFTMs, 0.99) }) | \(stat { p($0.firstTurnTTFTMs, 0.5) }) | \(stat({ $0.prefillSavedShare * 100 }, "%.1f")) % | \(stat({ p($0.utilisation, 0.1) * 100 }, "%.0f")) / \(stat({ p($0.utilisation, 0.5) * 100 }, "%.0f")) / \(stat({ p($0.utilisation, 0.9) * 100 }, "%.0f")) % | \(stat({ $0.utilisationCV }, "%.2f")) |"
            )
        }
    }

    static let configuration = CommandConfiguration(
        abstract:
            "Every policy on the same seeds: TTFT, TPOT, class objectives met, central share and cost, failures, privacy."
    )

    @OptionGroup var fleet: FleetOptions

    func run() throws {
        let seeds = try self.fleet.parsedSeeds()
        let variants = try self.fleet.parsedPolicies()
        let loads = try self.fleet.parsedLoads()
        let fleet = self.fleet
        for load in loads {
            print(
                "fleet-sim compare: set \(fleet.set), \(fleet.cars) cars, load \(load)×, churn \(fleet.churn * 100) %/10 min, notice \(fleet.notice), central \(fleet.central * 100) % of slots, \(fleet.homogeneous ? "homogeneous control" : "heterogeneous"), \(fleet.exactEstimates ? "exact estimates" : "gateway estimates"), seeds \(seeds.map(String.init).joined(separator: ",")), \(Int(fleet.seconds)) s measured"
            )
            let jobs = try variants.flatMap { v in try seeds.map { (v, try fleet.parameters(v, seed: $0, load: load)) } }
            let started = Date()
            let results = parallel(jobs.count) { i in Simulation(jobs[i].1).run() }
            print("")
            let classes = results[0].classAttainment.map(\.0)
            print(
                "| policy | TTFT p50 ms | TTFT p99 ms | objective met | \(classes.map { "met: \($0)" }.joined(separator: " | ")) | TPOT p99 ms | central requests | central tokens | central $/1k req | failed | decision µs | predicted ÷ observed TTFT p50 |"
            )
            print("|---|---|---|---|\(classes.map { _ in "---|" }.joined())---|---|---|---|---|---|---|")
            for variant in variants {
                let runs = results.enumerated().filter { jobs[$0.offset].0 == variant }.map(\.element)
                func stat(_ f: (SimulationResult) -> Double, _ format: String = "%.0f") -> String {
                    let values = runs.map(f).sorted()
                    let median = values[values.count / 2]
                    guard values.count > 1 else { return String(format: format, median) }
                    return String(format: "\(format) (\(format)–\(format))", median, values.first!, values.last!)
                }
                let perClass = classes.indices.map { c in stat({ $0.classAttainment[c].1 * 100 }, "%.1f") + " %" }
                print(
                    "| \(variant.name) | \(stat { SimulationResult.percentile($0.ttftMs, 0.5) }) | \(stat { SimulationResult.percentile($0.ttftMs, 0.99) }) | \(stat({ $0.sloAttainment * 100 }, "%.1f")) % | \(perClass.joined(separator: " | ")) | \(stat({ SimulationResult.percentile($0.tpotMs, 0.99) }, "%.1f")) | \(stat({ $0.centralFraction * 100 }, "%.1f")) % | \(stat({ $0.centralTokenFraction * 100 }, "%.1f")) % | \(stat({ $0.centralDollarsPer1kRequests }, "%.3f")) | \(runs.map(\.failed).reduce(0, +)) | \(stat({ $0.decisionMicroseconds }, "%.2f")) | \(stat({ SimulationResult.percentile($0.predictedOverObservedTTFT, 0.5) }, "%.2f")) |"
                )
                let violations = runs.map { $0.privacyViolations + $0.eligibilityViolations + $0.lost }.reduce(0, +)
                if violations > 0 { print("**\(variant.name): \(violations) privacy/eligibility violations or lost requests**") }
            }
            if fleet.conversations { Self.printConversations(variants: variants, jobs: jobs.map(\.0), results: results) }
            let requests = results.map(\.requests).reduce(0, +)
            print("")
            print(
                String(
                    format: "%d runs, %d measured requests, %.0f s wall; medians over seeds (min–max)", results.count,
                    requests, Date().timeIntervalSince(started)))
            print("")
        }
    }
}
