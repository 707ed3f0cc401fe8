import ArgumentParser
import FleetLoadKit
import Foundation

/// `fleet-load run SCENARIO`: starts a gateway and a fleet, sends the scenario's load, applies its
/// churn, checks its invariants, writes `summary.json` and `report.html`; exits 1 when an invariant fails.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a scenario file (LoadTests/scenarios/*.yaml, or a name of one there).")

    @Argument(help: "Scenario file, or the name of one in LoadTests/scenarios.") var scenario: String
    @Option(help: "Override the scenario's seed.") var seed: UInt64?
    @Option(help: "Override the measured duration, seconds.") var duration: Double?
    @Option(help: "Directory for summary.json, report.html, jobs.ndjson and gateway.log.") var output: String?
    @Option(help: "GeoIP database the gateway uses (default: the one scripts/setup.sh builds).") var geoip: String?
    @Option(help: "Event-loop threads for the simulated cars.") var carThreads = 1
    @Option(help: "Override the number of cars (scaled over the scenario's groups).") var cars: Int?
    @Flag(help: "TLS on the tunnel port, whatever the scenario says.") var tls = false
    @Option(
        help: ArgumentHelp(
            "Drive a gateway already running on this machine (its client port, loopback only) instead of starting one.",
            valueName: "HOST:PORT")) var target: String?
    @Option(help: "With --target: the running gateway's tunnel port.") var tunnelPort = 7443
    @Option(help: "With --target: the running gateway's admin port (GET /readyz counts the cars).") var adminPort = 9090
    @Option(help: "With --target: serve the scenario's central capacity on this port and the next ones.")
    var centralPort: Int?
    @Option(help: "Override clients.originVia: xff or proxy-v2.") var originVia: String?
    @Option(help: "Override clients.http1Share (0–1).") var http1Share: Double?
    @Flag(help: "Do not emulate the cars' links (no delay, jitter or bandwidth limit on their tunnels).")
    var noLinkEmulation = false
    @Option(help: "Pin the gateway's threads to these CPUs (taskset list, e.g. 0; run the harness under taskset -c 1).")
    var gatewayCpus: String?

    func run() async throws {
        let path = FileManager.default.fileExists(atPath: self.scenario)
            ? self.scenario : "LoadTests/scenarios/\(self.scenario).yaml"
        var scenario: Scenario
        do { scenario = try Scenario.load(path: path) } catch {
            throw ValidationError("\(error)")
        }
        if let seed = self.seed { scenario.seed = seed }
        if let duration = self.duration { scenario.duration = duration }
        if self.tls { scenario.gateway.tunnelTLS = true }
        if let text = self.originVia {
            guard let via = Scenario.OriginVia(rawValue: text) else {
                throw ValidationError("--origin-via \(text): expected xff or proxy-v2")
            }
            scenario.clients.originVia = via
        }
        if let share = self.http1Share {
            guard (0...1).contains(share) else { throw ValidationError("--http1-share \(share): expected 0–1") }
            scenario.clients.http1Share = share
        }
        if let cars = self.cars, scenario.carCount > 0 {
            let total = scenario.carCount
            for i in scenario.fleet.indices { scenario.fleet[i].count = scenario.fleet[i].count * cars / total }
            scenario.fleet[0].count += cars - scenario.carCount
        }
        let output = self.output ?? ".build/fleet-load/\(scenario.name)-seed\(scenario.seed)"
        var run = HarnessRun(
            scenario: scenario, output: output,
            geoDatabase: self.geoip ?? HarnessRun.cacheDirectory + "/geoip/fleet-country.mmdb")
        run.carThreads = self.carThreads
        run.emulateLinks = !self.noLinkEmulation
        if let target = self.target {
            do {
                run.target = try HarnessTarget(
                    target, tunnelPort: self.tunnelPort, adminPort: self.adminPort, centralPort: self.centralPort)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        run.gatewayCPUs = self.gatewayCpus
        let summary = try await run.run()
        print(SummaryFiles.text(summary))
        print("fleet-load: wrote \(output)/summary.json and \(output)/report.html")
        if !summary.passed { throw ExitCode(1) }
    }
}
