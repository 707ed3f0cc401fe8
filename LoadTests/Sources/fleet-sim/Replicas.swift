import ArgumentParser
import FleetSimulation
import Foundation

/// `fleet-sim replicas`: issue #21's routing-quality question. The same fleet and workload behind
/// one global registry (1 replica) and behind R replicas that see each other only through capacity
/// digests (published every `--digest-interval` s, only on change) and forward one hop.
struct Replicas: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "One global registry against R replicas sharing digests: TTFT, objective met, share forwarded, etcd writes."
    )

    @OptionGroup var fleet: FleetOptions
    @Option(help: "Comma-separated replica counts; 1 is the global registry.") var replicas = "1,20"
    @Option(help: "Seconds between digest publications (only on change).") var digestInterval = 1.0
    @Option(help: "Forward when a remote digest beats the best local car by this much, ms.") var forwardMargin = 200.0
    @Option(help: "Added latency of one forward (the loopback test measures it), ms.") var hopMs = 2.0

    func run() throws {
        let seeds = try self.fleet.parsedSeeds()
        let counts = self.replicas.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--replicas: no replica count in '\(self.replicas)'")
        }
        let variant = try Variant("predictive")
        let load = try self.fleet.parsedLoads()[0]
        var jobs: [SimulationParameters] = []
        for count in counts {
            for seed in seeds {
                var p = try self.fleet.parameters(variant, seed: seed, load: load)
                p.replicas = count
                p.digestIntervalSeconds = self.digestInterval
                p.forwardMarginMilliseconds = self.forwardMargin
                p.hopMilliseconds = self.hopMs
                jobs.append(p)
            }
        }
        print(
            "fleet-sim replicas: set \(self.fleet.set), \(self.fleet.cars) cars, load \(load)×, predictive, digests every \(self.digestInterval) s, margin \(self.forwardMargin) ms, hop \(self.hopMs) ms, seeds \(seeds.map(String.init).joined(separator: ",")), \(Int(self.fleet.seconds)) s measured"
        )
        let started = Date()
        let all = jobs
        let results = parallel(all.count) { i in Simulation(all[i]).run() }
        print("")
        print(
            "| replicas | TTFT p50 ms | TTFT p99 ms | objective met | central requests | failed | forwarded | digest writes/s | digest bytes/s | privacy violations |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for count in counts {
            let runs = results.filter { $0.parameters.replicas == count }
            func median(_ f: (SimulationResult) -> Double) -> Double {
                let values = runs.map(f).sorted()
                return values[values.count / 2]
            }
            print(
                String(
                    format: "| %d | %.0f | %.0f | %.1f %% | %.1f %% | %d | %.1f %% | %.1f | %.0f | %d |", count,
                    median { SimulationResult.percentile($0.ttftMs, 0.5) },
                    median { SimulationResult.percentile($0.ttftMs, 0.99) }, median { $0.sloAttainment * 100 },
                    median { $0.centralFraction * 100 }, runs.map(\.failed).reduce(0, +),
                    median { $0.forwardedFraction * 100 }, median { $0.digestWritesPerSecond },
                    median { $0.digestBytesPerSecond }, runs.map(\.privacyViolations).reduce(0, +)))
        }
        print("")
        print(String(format: "%d runs, %.0f s wall; medians over seeds", results.count, Date().timeIntervalSince(started)))
    }
}
