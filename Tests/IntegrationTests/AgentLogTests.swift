import FleetAgent
import FleetGate
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Testing

/// What a car's operator reads when its agent cannot join (helper-70: a refused car logged
/// "Tunnel connected" and "retired" and never why; an unreachable gateway was a debug line).
@Suite("The agent says why it is not connected", .timeLimit(.minutes(1)))
struct AgentLogTests {
    /// Runs a simulated car with `configuration` and a capturing logger until `done` holds of its lines.
    func run(_ configuration: AgentConfiguration, until done: @escaping @Sendable (CapturedLog) -> Bool) async throws
        -> CapturedLog
    {
        let sink = CapturedLog()
        let car = SimulatedCar(
            configuration: configuration,
            state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 4),
            group: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "agent") { _ in CapturedLog.Handler(sink: sink) })
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await car.tunnel.run() }
            try await waitUntil(timeout: .seconds(20), "the agent's lines") { done(sink) }
            tasks.cancelAll()
        }
        return sink
    }

    @Test("A car the gateway refuses logs the gateway's reason as a warning")
    func refusalReason() async throws {
        try await withFleet { fleet in
            // A token for another vehicle: the gateway refuses the hello with a GOAWAY naming why.
            let configuration = AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: fleet.tunnelPort, vehicleID: "car-claimed",
                credential: try fleet.token(vehicleID: "car-other", region: "eu-central"), region: "eu-central",
                hardware: .hw4, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(100))
            let lines = try await self.run(configuration) {
                !$0.matching("The gateway closed the tunnel with an error").isEmpty
                    && !$0.matching("Tunnel closed").isEmpty
            }
            let refusal = try #require(lines.matching("The gateway closed the tunnel with an error").first)
            #expect(refusal.level == .warning)
            let reason = refusal.metadata["fleet.reason"].map { "\($0)" } ?? ""
            #expect(!reason.isEmpty, "the refusal's line: \(refusal)")
            print("agent refused: \(reason)")
            // helper-137: "Tunnel closed" said no reason; now the gateway's GOAWAY, its code and its words.
            let closed = try #require(lines.matching("Tunnel closed").first)
            let why = closed.metadata["fleet.reason"].map { "\($0)" } ?? ""
            #expect(why.contains("GOAWAY (PROTOCOL_ERROR") && why.contains(reason), "\(closed)")
        }
    }

    @Test("A TLS handshake the gateway refuses: the car warns with the TLS error, the gateway counts it")
    func refusedHandshake() async throws {
        let pki = try VehicleCertificateTests.PKIFiles()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        try await withFleet(configure: pki.configure) { fleet in
            // A certificate from another CA: the gateway refuses the handshake; the car only saw TCP connect
            // and close, at info, forever (helper-73).
            let rogueCA = try FleetPKI.makeCA(name: "rogue")
            let rogue = try FleetPKI(certificatePEM: rogueCA.certificatePEM, privateKeyPEM: rogueCA.privateKeyPEM)
            let (forged, _) = try pki.vehicle("car-forged", regions: ["eu-central"], issuer: rogue)
            let configuration = AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: fleet.tunnelPort, vehicleID: "car-forged", credential: "",
                region: "eu-central", hardware: .hw4, initialBackoff: .milliseconds(20),
                maxBackoff: .milliseconds(100), tls: forged)
            let message =
                "Tunnel closed before the gateway took the car (a TLS handshake refused, or not a FleetGate tunnel port)"
            let lines = try await self.run(configuration) { !$0.matching(message).isEmpty }
            let closed = try #require(lines.matching(message).first)
            #expect(closed.level == .warning)
            #expect("\(closed.metadata["error.message"] ?? "")".contains("UNKNOWN_CA"), "\(closed)")
            // Not "connected" at the TCP connect (helper-104: said before every refused handshake).
            #expect(lines.matching("Tunnel connected").isEmpty)
            let client = try await RecordingClient.connect(port: fleet.adminPort)
            defer { client.close() }
            let metrics = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
            ).collect().body
            #expect(!metrics.contains(#"fleet_car_refused_total{reason="tls"} 0"#))
            #expect(metrics.contains(#"fleet_car_refused_total{reason="tls"}"#), "\(metrics.prefix(300))")
        }
    }

    /// helper-73: a quarantined car exited with ServiceGroup's "service finished unexpectedly", and the
    /// unit's Restart=always dialled again forever.
    @Test("A car the gateway refuses for good exits with 78, which the systemd unit does not restart")
    func refusedExits() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-refused-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let revocations = dir.appendingPathComponent("revocations").path
        try "vehicle car-revoked\n".write(toFile: revocations, atomically: true, encoding: .utf8)
        let gateway = try await GatewayProcess.start(["--tunnel-revocation-file", revocations])
        defer { gateway.stop() }
        let tokenFile = dir.appendingPathComponent("token").path
        try gateway.credential(vehicleID: "car-revoked").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let agent = URL(fileURLWithPath: GatewayProcess.binary).deletingLastPathComponent()
            .appendingPathComponent("fleet-agent").path
        func run(_ vehicleID: String) async throws -> Subprocess.Result {
            try await Subprocess.run(
                agent,
                [
                    "run", "--gateway", "127.0.0.1:\(gateway.tunnelPort)", "--vehicle-id", vehicleID, "--region",
                    "eu-central", "--hardware", "hw4", "--token-file", tokenFile,
                ], timeout: 30)
        }
        let result = try await run("car-revoked")
        #expect(result.status == AgentRefused.exitCode, "\(result.stderr.suffix(2_000))")
        #expect(result.stderr.contains("not restarting") || result.stdout.contains("not restarting"))
        // helper-130: `token issue --days 0` minted a token already expired, and exited 0.
        let zero = try await Subprocess.run(
            "env",
            [
                "FLEETGATE_FLEET_SECRET=\(FleetFixture.testSecret)", GatewayProcess.binary, "token", "issue",
                "--vehicle-id", "car-zero", "--region", "eu-central", "--days", "0",
            ])
        #expect(zero.status != 0 && zero.stderr.contains("at least 1") && !zero.stdout.contains("fgv1."))
        // helper-137: `--days 99999999999` minted a token for 270 million years; 2^63-1 crashed the command.
        for days in ["99999999999", "\(Int.max)"] {
            let huge = try await Subprocess.run(
                "env",
                [
                    "FLEETGATE_FLEET_SECRET=\(FleetFixture.testSecret)", GatewayProcess.binary, "token", "issue",
                    "--vehicle-id", "car-huge", "--region", "eu-central", "--days", days,
                ])
            #expect(huge.status == 64 && huge.stderr.contains("at most 3650"), "\(days): \(huge.stderr.prefix(500))")
            #expect(!huge.stdout.contains("fgv1."))
        }
        // helper-130: a token already expired at hello was redialled for ever.
        let expired = try FleetCredentials(secret: FleetFixture.testSecret).issue(
            vehicleID: "car-expired", regions: ["eu-central"], expires: Date().addingTimeInterval(-60))
        try expired.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let lapsed = try await run("car-expired")
        #expect(lapsed.status == AgentRefused.exitCode, "\(lapsed.stderr.suffix(2_000))")
        #expect((lapsed.stderr + lapsed.stdout).contains("token-expired"), "\(lapsed.stderr.suffix(2_000))")
        let unit = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../deploy/systemd/fleet-agent.service").standardized, encoding: .utf8)
        #expect(unit.contains("RestartPreventExitStatus=\(AgentRefused.exitCode)"))
    }

    @Test("An unreachable gateway is a warning at the 1st, 2nd and 4th failure in a row, the 3rd a debug line")
    func dialFailures() async throws {
        // A port nothing listens on: bound, then closed.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let configuration = AgentConfiguration(
            gatewayHost: "127.0.0.1", gatewayPort: port, vehicleID: "car-alone", credential: "unused",
            region: "eu-central", hardware: .hw4, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(20))
        let lines = try await self.run(configuration) { $0.matching("Tunnel dial failed").count >= 4 }
        let failures = lines.matching("Tunnel dial failed").prefix(4)
        #expect(failures.map(\.level) == [.warning, .warning, .debug, .warning])
        #expect(failures.allSatisfy { $0.metadata["error.message"] != nil })
        #expect(failures.map { $0.metadata["fleet.dial.failures"].map { "\($0)" } } == ["1", "2", "3", "4"])
    }
}
