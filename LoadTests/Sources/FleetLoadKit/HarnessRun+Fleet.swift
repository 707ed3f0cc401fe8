import FleetTesting
import Foundation

/// Starting the fleet, and what the gateway's memory does meanwhile.
extension HarnessRun {
    /// Starts the fleet in steps (``memorySteps(_:)``); at each, waits until the gateway has
    /// registered those cars (or their count stops growing), lets the first PINGs go round, and
    /// reads the gateway's RSS.
    /// - Returns: the cars registered at the end, and the gateway's idle memory at each step.
    func startFleet(_ fleet: Fleet, gateway: GatewayUnderTest) async throws -> (
        registered: Int, idle: Summary.IdleMemory
    ) {
        let count = fleet.plan.count
        let clock = ContinuousClock()
        let started = clock.now
        let rssBefore = gateway.resident ?? 0
        var steps: [Summary.IdleMemory.Step] = []
        var registered = 0
        var dialled = 0
        for step in Self.memorySteps(count) {
            await fleet.start(dialled..<step, perSecond: self.scenario.carsPerSecond)
            dialled = step
            registered = try await gateway.waitForCars(step, timeout: .seconds(30 + (step - registered) / 100))
            self.log(
                "fleet-load: \(registered) of \(step) cars registered after "
                    + String(format: "%.1f s", (clock.now - started).seconds) + "; gateway RSS "
                    + "\((gateway.resident ?? 0) >> 20) MiB")
            // Idle: the cars' hellos are in, no request yet; let the first PINGs go round.
            try await Task.sleep(for: .seconds(3))
            steps.append(.init(tunnels: registered, rss: gateway.resident ?? 0))
        }
        let idle = Summary.IdleMemory(rssBefore: rssBefore, steps: steps)
        let marginal = idle.marginalBytesPerTunnel.map { ", \($0) marginal from \(steps[0].tunnels) on" } ?? ""
        self.log(
            "fleet-load: gateway RSS \(idle.rssBefore >> 10) KiB before cars, \(idle.rssWithCars >> 10) KiB with "
                + "\(registered) idle tunnels: \(idle.bytesPerTunnel) bytes per tunnel\(marginal) "
                + "(\(self.scenario.gateway.tunnelTLS ? "TLS" : "cleartext"))")
        return (registered, idle)
    }

    /// How many cars are up at each memory reading: a tenth, half and all of a fleet of 1,000 or
    /// more (the slope between the first and last excludes what only the first tunnels pay);
    /// smaller fleets in one step.
    package static func memorySteps(_ count: Int) -> [Int] {
        guard count >= 1_000 else { return [count] }
        return [count / 10, count / 2, count]
    }

    /// Pins every thread of `pid` to `cpus` (a `taskset` list such as `0` or `0-1`), so the gateway
    /// and the harness run on separate cores.
    static func pin(pid: Int32, cpus: String) async throws {
        let result = try await Subprocess.run("taskset", ["-a", "-p", "-c", cpus, "\(pid)"])
        guard result.status == 0 else { throw HarnessError("taskset -a -p -c \(cpus) \(pid): \(result.stderr)") }
    }
}
