import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Testing

@Suite("Graceful shutdown", .timeLimit(.minutes(2)))
struct ShutdownTests {
    @Test("On shutdown, in-flight streams finish in full and new connections are refused")
    func inFlightFinishes() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.5))  // 100 tok/s: ~2 s stream
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // 200 tokens: long enough for a second car to register during the drain on a busy machine.
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 200))
            try await waitUntil("streaming") { car.engine.tokensGenerated >= 10 }
            async let shutdown: Void = fleet.shutDownGracefully()
            // A car that registers while the gateway drains hears `reconnect` too (it registered
            // after the notice went out to the others).
            try await waitUntil("draining") { !fleet.gateway.readiness.isReady }
            let late = try? await fleet.startCar(CarSpec("car-late", hardware: .ai5), timeout: .seconds(3))
            let result = await stream.collect()
            await shutdown
            #expect(result.response?.status == .ok)
            #expect(
                result.error == nil && result.ended, "\(String(describing: result.error)) \(result.body.suffix(300))")
            let decoded = try chunks(try ssePayloads(result.body))
            #expect(decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == 200)
            #expect(try ssePayloads(result.body).last == "[DONE]")
            // Shutdown goes on after the trigger returns: wait for its effects rather than race them.
            try await waitUntil("the client port refuses connections") {
                (try? await RecordingClient.connect(port: fleet.clientPort)).map { $0.close() } == nil
            }
            // The car was told on the control channel to go elsewhere.
            try await waitUntil("the car heard reconnect") {
                car.car.tunnel.responder.control.messages.map(\.type) == [.reconnect]
            }
            if let late {
                try await waitUntil("the late car heard reconnect") {
                    late.car.tunnel.responder.control.messages.map(\.type).contains(.reconnect)
                }
            } else {
                Issue.record("no car could register during the drain: the tunnel listener stopped first")
            }
        }
    }

    /// helper-70: a drain said nothing, and a second SIGTERM did not stop a gateway waiting on a stream.
    @Test("SIGTERM drains and says so; a second SIGTERM stops a gateway still waiting on a stream")
    func secondSignalStops() async throws {
        let gateway = try await GatewayProcess.start()
        defer { gateway.stop() }
        let (car, running) = try await Self.slowCar(gateway)
        defer { running.cancel() }
        let client = try await RecordingClient.connect(port: gateway.clientPort)
        defer { client.close() }
        let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2_000))
        try await waitUntil("streaming") { car.engine.tokensGenerated >= 3 }

        kill(gateway.process.processIdentifier, SIGTERM)
        try await waitUntil("the drain's line") { gateway.log.contains("Draining") }
        #expect(gateway.log.contains("fleet.requests.in_flight=1"), "\(gateway.log.suffix(2_000))")
        try await Task.sleep(for: .milliseconds(500))
        #expect(gateway.isRunning, "the first SIGTERM waits for the stream (30 s by default)")

        kill(gateway.process.processIdentifier, SIGTERM)
        try await waitUntil(timeout: .seconds(10), "the gateway stopped") { !gateway.isRunning }
        #expect(gateway.log.contains("Stopped"), "\(gateway.log.suffix(2_000))")
        // 128 + SIGTERM, not 0: a supervisor learns the stream was cut (helper-136: it exited 0).
        #expect(gateway.status.hasPrefix("exit 143:"), "\(gateway.status)")
        #expect(gateway.log.contains("process.exit.code=143"), "\(gateway.log.suffix(2_000))")
        _ = await stream.collect()
    }

    /// helper-99: a stream the drain's grace cut was audited 499, "client went away".
    @Test("A stream still open when the drain's grace ends is audited as the gateway's cut, 503 gateway_shutdown")
    func graceCutIsTheGateways() async throws {
        let gateway = try await GatewayProcess.start(
            environment: ["FLEETGATE_LIMITS_CLIENT_HTTP2_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS": "1"])
        defer { gateway.stop() }
        let (car, running) = try await Self.slowCar(gateway)
        defer { running.cancel() }
        let client = try await RecordingClient.connect(port: gateway.clientPort)
        defer { client.close() }
        let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2_000))
        try await waitUntil("streaming") { car.engine.tokensGenerated >= 3 }
        kill(gateway.process.processIdentifier, SIGTERM)
        let result = await stream.collect()
        #expect(result.response?.status == .ok && !result.body.contains("[DONE]"), "the grace cut the stream")
        try await waitUntil(timeout: .seconds(10), "the gateway stopped") { !gateway.isRunning }
        let line = gateway.log.split(separator: "\n").first { $0.hasSuffix("Request served") }
        #expect(
            line?.contains("error.type=gateway_shutdown") == true && line?.contains("fleet.status=503") == true,
            "\(gateway.log.suffix(2_000))")
    }

    /// helper-99: an agent waiting to redial a gateway that is down took its whole backoff to stop.
    @Test("fleet-agent waiting to redial stops at once on SIGTERM")
    func agentStopsDuringBackoff() async throws {
        let closed = try await Self.holdPort()
        let port = closed.localAddress!.port!
        try await closed.close()  // nothing listens there now: every dial is refused
        let agent = try AgentProcess(
            vehicleID: "car-backoff", region: "eu-central", token: "unused", tunnelPort: port,
            jobLog: FileManager.default.temporaryDirectory.appendingPathComponent("backoff-\(UUID()).log").path,
            extra: ["--reconnect-initial-backoff-seconds", "20", "--reconnect-max-backoff-seconds", "20"])
        defer { agent.stop() }
        try await Task.sleep(for: .seconds(1))  // the first dial failed; the 20 s wait began
        #expect(agent.isRunning)
        kill(agent.pid, SIGTERM)
        try await waitUntil(timeout: .seconds(5), "the agent stopped") { !agent.isRunning }
        #expect(agent.ended == "exit 0", "nothing was cut")
    }

    /// helper-130: the agent ignored a second SIGTERM or SIGINT for the rest of its drain.
    @Test("fleet-agent: the first SIGINT drains, waiting for its job; a second stops it at once")
    func agentSecondSignalStops() async throws {
        try await withFleet { fleet in
            let agent = try await fleet.startAgentProcess(
                "car-twice",
                jobLog: FileManager.default.temporaryDirectory.appendingPathComponent(
                    "twice-\(UUID()).log"
                ).path, slowdown: 10, extra: ["--drain-seconds", "300"])
            defer { agent.stop() }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // A job the drain's 300 s can finish: the gateway leaves it on the car.
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 300))
            // Its first token relayed: the car has the job (the registry counts it from its dispatch, before the
            // car has read it; a SIGINT then found none and exited 0 at once).
            try await waitUntil("the job runs on the car") { stream.receivedBytes > 0 }
            kill(agent.pid, SIGINT)
            try await Task.sleep(for: .seconds(1))
            #expect(agent.isRunning, "the first SIGINT drains: the job may take drainSeconds")
            kill(agent.pid, SIGINT)
            try await waitUntil(timeout: .seconds(5), "the agent stopped") { !agent.isRunning }
            // 128 + SIGINT, not 0: the job was cut (helper-136: it exited 0).
            #expect(agent.ended == "exit 130")
            _ = await stream.collect(timeout: .seconds(30))
        }
    }

    /// helper-130: a state file the car's software had not written yet stopped `run` (exit 1), and the
    /// unit's Restart=always restarted it every 5 s.
    @Test("fleet-agent with a state file not there yet takes no work (departing now), and serves once it reads it")
    func stateFileLater() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-later-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withFleet { fleet in
            let agent = try await fleet.startAgentProcess(
                "car-later", jobLog: path + ".jobs", extra: ["--state-file", path])
            defer { agent.stop() }
            func car() -> CarSnapshot? {
                fleet.gateway.core.registry.all().first { $0.descriptor.vehicleID == "car-later" }
            }
            #expect(car()?.state.departingInSeconds == 0)
            // A first file without plugged_in (or departing_in_s) still ends the hold (helper-132).
            try #"{"charge_percent":70}"#.write(toFile: path, atomically: true, encoding: .utf8)
            try await waitUntil(timeout: .seconds(10), "the file applied") {
                car()?.state.departingInSeconds == nil && car()?.state.chargePercent == 70
            }
            try? FileManager.default.removeItem(atPath: path + ".jobs")
        }
    }

    /// A slow car in this process, registered with `gateway`: ~10 tokens a second, so a 2,000-token stream
    /// outlasts the test. Cancel the task to stop it.
    static func slowCar(_ gateway: GatewayProcess) async throws -> (SimulatedCar, Task<Void, any Error>) {
        let car = SimulatedCar(
            configuration: AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: gateway.tunnelPort, vehicleID: "car-slow",
                credential: try gateway.credential(vehicleID: "car-slow"), region: "eu-central", hardware: .hw4),
            state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 4), slowdown: 5,
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "car"))
        let running = Task { try await car.tunnel.run() }
        try await gateway.waitForCars(1)
        return (car, running)
    }

    /// A listening socket on a loopback port the kernel picked: a port the gateway cannot have.
    static func holdPort() async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
    }

    /// helper-73: a listener that failed to bind ended the service group, and the log said
    /// "Draining" as if an operator had asked for a stop.
    @Test("A port already taken stops serve with the bind error, not a drain")
    func bindFailureIsNoDrain() async throws {
        let holder = try await Self.holdPort()
        defer { holder.close(promise: nil) }
        let taken = holder.localAddress!.port!
        do {
            let gateway = try await GatewayProcess.start(["--admin-port", "\(taken)"], timeout: .seconds(20))
            gateway.stop()
            Issue.record("serve came up on a taken port")
        } catch let exited as GatewayProcess.GatewayExited {
            #expect(!exited.log.contains("Draining"), "\(exited.log.suffix(2_000))")
            #expect(exited.log.contains("Stopping before every listener was bound"), "\(exited.log.suffix(2_000))")
            #expect(exited.log.contains("\(taken)"), "the error names the port: \(exited.log.suffix(2_000))")
        }
    }

    @Test("A taken port is fatal for serve but falls back to a free one when asked (the demo)")
    func portFallback() async throws {
        let holder = try await Self.holdPort()
        defer { holder.close(promise: nil) }
        let taken = holder.localAddress!.port!
        await #expect(throws: (any Error).self) {
            try await withFleet(configure: { $0.clientPort = taken }) { _ in }
        }
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: {
                $0.clientPort = taken
                $0.fallbackToFreePorts = true
            }
        ) { fleet in
            #expect(fleet.clientPort != taken)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2))
                .collect()
            #expect(result.response?.status == .ok)
        }
    }
}
