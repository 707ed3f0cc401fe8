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
}
