import ArgumentParser
import FleetProtocol
import FleetScheduler
import Foundation
import Histogram

/// The decision-cost micro-benchmark on a busy pool: a registry of `--cars` cars of which
/// `--eligible` can take the request, most of them already holding streams; each step is one
/// `decide` + `acquire` (timed together, wall clock, HdrHistogram), the `finish` of the oldest
/// lease still held (timed apart), and PINGs and telemetry messages for cars in random order
/// (timed apart). Memory is the process's resident growth per registered car. Run under
/// `valgrind --tool=callgrind` with `--decisions` small to count instructions (LoadTests/README.md).
struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decision cost with a large, busy registry.")

    @Option(help: "Cars registered.") var cars = 1_000_000
    @Option(help: "Of which eligible for the benchmark's request (the rest: other zone, other model, unplugged, full).")
    var eligible = 100_000
    @Option(help: "Decisions timed (each: decide + acquire, then one finish and two updates).") var decisions = 200_000
    @Option(help: "Policy.") var policy = SchedulingPolicy.predictive.rawValue
    @Option(help: "Seed of the update order.") var seed: UInt64 = 1

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
            // unplugged (connected, ineligible), and eu/m but full (every slot and queue place taken below).
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
        // Busy: every full car holds 3 streams; of the eligible ones, 40 % hold 1 and 40 % hold 2.
        var held: [Lease] = []
        for i in 0..<self.cars {
            let streams = i < self.eligible ? [0, 0, 1, 1, 2][i % 5] : (i % 4 == 3 ? 3 : 0)
            guard streams > 0, let choice = registry.evaluate(ids[i], for: request, now: 0) else { continue }
            for _ in 0..<streams {
                if let lease = registry.acquire(choice, for: request, now: 0) { held.append(lease) }
            }
        }
        var random = SplitMix64(seed: self.seed)
        for i in stride(from: held.count - 1, to: 0, by: -1) {
            held.swapAt(i, Int(random.next() % UInt64(i + 1)))
        }
        let built = Date().timeIntervalSince(started)
        let after = residentBytes()
        print(
            String(
                format:
                    "registry: %d cars (%d eligible for the request, %d streams held) built in %.1f s; resident memory %.0f B per car",
                self.cars, registry.availableCount(model: "m", zone: "eu"), held.count, built,
                Double(after - before) / Double(self.cars)))

        func ns(_ d: Duration) -> UInt64 {
            UInt64(max(0, d.components.attoseconds / 1_000_000_000 + d.components.seconds * 1_000_000_000))
        }
        func histogram() -> Histogram<UInt64> {
            Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        }
        let plugged = VehicleState(pluggedIn: true, chargePercent: 75, link: .cellular, slotsFree: 1)
        var unplugged = plugged
        unplugged.pluggedIn = false
        var decide = histogram()
        var finish = histogram()
        var ping = histogram()
        var telemetry = histogram()
        let clock = ContinuousClock()
        var sink = 0
        var next = 0
        let outcome = Outcome(
            ttftMilliseconds: 400, tpotMilliseconds: 25, promptTokens: 500, outputTokens: 200, succeeded: true)
        for i in 0..<self.decisions {
            let now = 1 + Double(i) * 1e-3
            var start = clock.now
            let decision = registry.decide(request, now: now)
            let lease = decision.choices.first.flatMap { registry.acquire($0, for: request, now: now) }
            decide.record(ns(clock.now - start))
            sink &+= decision.choices.count
            // The oldest lease held finishes, so the pool stays as busy as it started.
            if let lease { held.append(lease) }
            if next < held.count {
                start = clock.now
                registry.finish(held[next], outcome, now: now)
                finish.record(ns(clock.now - start))
                next += 1
            }
            // A PING and a telemetry message for cars in random order (the same plug state as registered).
            let a = Int(random.next() % UInt64(self.cars))
            start = clock.now
            registry.recordRTT(ids[a], milliseconds: Double(10 + a % 40))
            ping.record(ns(clock.now - start))
            let b = Int(random.next() % UInt64(self.cars))
            start = clock.now
            registry.update(ids[b], state: b >= self.eligible && b % 4 == 2 ? unplugged : plugged, now: now)
            telemetry.record(ns(clock.now - start))
        }
        func line(_ name: String, _ h: Histogram<UInt64>) -> String {
            String(
                format: "%@: median %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f µs", name,
                Double(h.valueAtPercentile(50)), Double(h.valueAtPercentile(99)), Double(h.valueAtPercentile(99.9)),
                Double(h.max) / 1_000)
        }
        print("\(policy.rawValue), \(self.decisions) steps (choices per decision \(sink / max(1, self.decisions))):")
        print(line("  decide + acquire", decide))
        print(line("  finish", finish))
        print(line("  PING, random car", ping))
        print(line("  telemetry, random car", telemetry))
    }
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
