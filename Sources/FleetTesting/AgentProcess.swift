import FleetGate
import FleetScheduler
public import Foundation

/// A real `fleet-agent run` process, for fault injection that only a process can show: `kill -9`
/// (the kernel closes the socket), `SIGSTOP` (a frozen car: no FIN, no PING answers, no tokens).
public final class AgentProcess: @unchecked Sendable {
    public let vehicleID: String
    public let jobLog: String
    let process: Process

    /// The built `fleet-agent` beside the test binary (`swift build --build-tests` builds it).
    public static func executable() throws -> String {
        var candidates: [String] = []
        if let argument = CommandLine.arguments.first {
            var url = URL(fileURLWithPath: argument).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(url.appendingPathComponent("fleet-agent").path)
                url = url.deletingLastPathComponent()
            }
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/.build/debug/fleet-agent")
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Subprocess.MissingTool(name: "fleet-agent (looked in \(candidates.joined(separator: ", ")))")
        }
        return found
    }

    /// Starts an agent dialling `127.0.0.1:tunnelPort` with a synthetic engine.
    public init(
        vehicleID: String, region: String, token: String, tunnelPort: Int, jobLog: String,
        hardware: String = "ai5", slowdown: Double = 1, extra: [String] = []
    ) throws {
        self.vehicleID = vehicleID
        self.jobLog = jobLog
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.executable())
        process.arguments =
            [
                "run", "--gateway", "127.0.0.1:\(tunnelPort)", "--vehicle-id", vehicleID, "--region", region,
                "--hardware", hardware, "--slowdown", String(slowdown), "--job-log", jobLog, "--log-level", "error",
            ] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["FLEET_AGENT_TOKEN"] = token
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildLauncher.run(process)
        self.process = process
    }

    public var pid: Int32 { self.process.processIdentifier }
    public var isRunning: Bool { self.process.isRunning }
    /// How it ended, `exit N` or `signal N`; nil while it runs.
    public var ended: String? {
        guard !self.process.isRunning else { return nil }
        let how = self.process.terminationReason == .uncaughtSignal ? "signal" : "exit"
        return "\(how) \(self.process.terminationStatus)"
    }

    /// `kill -9`: no drain, no GOAWAY; the kernel closes its socket.
    public func kill9() { _ = kill(self.pid, SIGKILL) }
    /// `kill -STOP`: frozen; its socket stays open and silent.
    public func freeze() { _ = kill(self.pid, SIGSTOP) }
    /// `kill -CONT`.
    public func thaw() { _ = kill(self.pid, SIGCONT) }

    /// Ends the process for good (a frozen one too) and reaps it.
    public func stop() {
        guard self.process.isRunning else { return }
        _ = kill(self.pid, SIGKILL)
        _ = kill(self.pid, SIGCONT)
        ChildExit.wait(for: self.process)
    }

    deinit { self.stop() }
}

extension FleetFixture {
    /// Starts a real `fleet-agent run` process in `region` and waits until the gateway registered it.
    public func startAgentProcess(
        _ vehicleID: String, region: String = "eu-central", jobLog: String, hardware: String = "ai5",
        slowdown: Double = 1, extra: [String] = []
    ) async throws -> AgentProcess {
        let agent = try AgentProcess(
            vehicleID: vehicleID, region: region, token: try self.token(vehicleID: vehicleID, region: region),
            tunnelPort: self.tunnelPort, jobLog: jobLog, hardware: hardware, slowdown: slowdown, extra: extra)
        try await waitUntil(timeout: .seconds(20), "\(vehicleID) registered") {
            self.gateway.core.registry.all().contains { $0.descriptor.vehicleID == vehicleID }
        }
        return agent
    }
}
