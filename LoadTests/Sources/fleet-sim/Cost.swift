import ArgumentParser
import FleetProtocol
import FleetScheduler
import Foundation
import Histogram

/// The decision-cost micro-benchmark: a registry of `--cars` cars of which `--eligible` can take
/// the request, decisions timed one by one (wall clock, HdrHistogram), and the process's peak
/// memory per registered car. Run under `valgrind --tool=callgrind` with `--decisions` small to
/// count instructions per decision (see LoadTests/README.md).
struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decision cost with a large registry.")

    @Option(help: "Cars registered.") var cars = 1_000_000
    @Option(help: "Of which eligible for the benchmark's request (the rest: other zone, other model, unplugged, busy).")
    var eligible = 100_000
    @Option(help: "Decisions timed.") var decisions = 200_000
    @Option(help: "Policy.") var policy = SchedulingPolicy.predictive.rawValue

    func run() throws {
        guard let policy = SchedulingPolicy(rawValue: self.policy) else {
            throw ValidationError("--policy: unknown '\(self.policy)'")
        }
        let before = residentBytes()
        let registry = FleetRegistry(policy: policy)
        let started = Date()
        let profile = HardwareProfile.of(.ai5)
        var ids: [CarID] = []
        ids.reserveCapacity(self.cars)
        for i in 0..<self.cars {
            // Eligible: zone eu, model m, plugged. The rest: a quarter each other zone, other model,
            // unplugged (connected, ineligible), and eu/m but busy (every slot taken below).
            let kind = i < self.eligible ? 0 : 1 + (i % 4)
            let zone = kind == 1 ? "us" : "eu"
            let model = kind == 2 ? "other" : "m"
            let state = VehicleState(pluggedIn: kind != 3, chargePercent: 80, link: .wifi, slotsFree: 2)
            let descriptor = CarDescriptor(
                vehicleID: "v\(i)", pseudonym: "p\(i)", region: zone == "eu" ? "eu-central" : "us-east", zone: zone,
                hardware: i % 3 == 0 ? .ai5 : .hw4,
                models: [
                    ModelOffer(
                        id: model, decodeTokensPerSecond: profile.decodeTokensPerSecond,
                        prefillTokensPerSecond: profile.prefillTokensPerSecond)
                ], slots: 2, queueDepth: 1, policy: OwnerPolicy())
            let id = registry.register(descriptor, state: state).id
            registry.recordRTT(id, milliseconds: Double(10 + i % 50))
            ids.append(id)
        }
        let request = RequestProfile(model: "m", zone: "eu", promptTokens: 500, expectedOutputTokens: 200)
        for i in stride(from: self.eligible, to: self.cars, by: 1) where i % 4 == 3 {
            let choice = registry.evaluate(ids[i], for: request, now: 0)!
            for _ in 0..<3 { _ = registry.acquire(choice, for: request, now: 0) }
        }
        let built = Date().timeIntervalSince(started)
        let after = residentBytes()
        print(
            String(
                format:
                    "registry: %d cars (%d eligible for the request) built in %.1f s; resident memory %.0f B per car",
                self.cars, registry.availableCount(model: "m", zone: "eu"), built,
                Double(after - before) / Double(self.cars)))

        // Updates: a PING and a telemetry message per car, as the gateway applies them.
        let updates = min(self.cars, 1_000_000)
        var start = ContinuousClock.now
        for i in 0..<updates { registry.recordRTT(ids[i], milliseconds: Double(10 + i % 40)) }
        let ping = (ContinuousClock.now - start) / updates
        let plugged = VehicleState(pluggedIn: true, chargePercent: 75, link: .cellular, slotsFree: 1)
        var unplugged = plugged
        unplugged.pluggedIn = false
        start = ContinuousClock.now
        for i in 0..<updates {
            // The same plug state as registered, so the decision benchmark's eligible set stays.
            let isUnplugged = i >= self.eligible && i % 4 == 2
            registry.update(ids[i], state: isUnplugged ? unplugged : plugged, now: 1)
        }
        let telemetry = (ContinuousClock.now - start) / updates
        func ns(_ d: Duration) -> Double { Double(d.components.attoseconds) / 1e9 + Double(d.components.seconds) * 1e9 }
        print(String(format: "updates: PING %.0f ns, telemetry %.0f ns per car (%d of each)", ns(ping), ns(telemetry), updates))

        var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        let clock = ContinuousClock()
        var sink = 0
        for i in 0..<self.decisions {
            let start = clock.now
            let decision = registry.decide(request, now: Double(i) * 1e-3)
            let elapsed = clock.now - start
            sink &+= decision.choices.count
            histogram.record(
                UInt64(elapsed.components.attoseconds / 1_000_000_000 + elapsed.components.seconds * 1_000_000_000))
        }
        print(
            String(
                format: "%@: %d decisions: median %.2f µs, p99 %.2f µs, p99.9 %.2f µs, max %.1f µs (choices %d)",
                policy.rawValue, self.decisions, Double(histogram.valueAtPercentile(50)) / 1_000,
                Double(histogram.valueAtPercentile(99)) / 1_000, Double(histogram.valueAtPercentile(99.9)) / 1_000,
                Double(histogram.max) / 1_000, sink / max(1, self.decisions)))
    }
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
