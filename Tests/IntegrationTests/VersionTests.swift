import FleetProtocol
import FleetTesting
import Foundation
import Testing

/// helper-70: neither program said which version it was.
@Suite("Versions", .timeLimit(.minutes(1)))
struct VersionTests {
    @Test("Both programs print their version; the gateway logs it at start and exports fleet_build_info")
    func reported() async throws {
        let directory = URL(fileURLWithPath: GatewayProcess.binary).deletingLastPathComponent()
        for program in ["fleetgate", "fleet-agent"] {
            let result = try await Subprocess.run(directory.appendingPathComponent(program).path, ["--version"])
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == FleetVersion.current, "\(program)")
        }
        let gateway = try await GatewayProcess.start()
        defer { gateway.stop() }
        try await waitUntil("the start-up line") { gateway.log.contains("Configuration loaded") }
        #expect(gateway.log.contains("fleet.version=\(FleetVersion.current)"))
        let metrics = try await gateway.get("/metrics", admin: true).body
        #expect(metrics.contains("fleet_build_info{version=\"\(FleetVersion.current)\"} 1"))
    }

    /// helper-137: `fleet-agent run --help` listed no setting (they are configuration keys, not options).
    @Test("run and serve --help say where the settings are: keys as flags, environment, file, `config keys`")
    func settingsHelp() async throws {
        let directory = URL(fileURLWithPath: GatewayProcess.binary).deletingLastPathComponent()
        for (program, command, prefix) in [
            ("fleet-agent", "run", "FLEET_AGENT"), ("fleet-agent", "serve", "FLEET_AGENT"),
            ("fleetgate", "serve", "FLEETGATE"),
        ] {
            let result = try await Subprocess.run(
                directory.appendingPathComponent(program).path, [command, "--help"])
            // Help is wrapped at 80 columns: compare its words.
            let text = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(result.status == 0, "\(program) \(command)")
            for part in ["\(prefix)_* environment", "`\(program) config keys`", "docs/configuration.md"] {
                #expect(text.contains(part), "\(program) \(command) --help: \(text)")
            }
        }
    }
}
