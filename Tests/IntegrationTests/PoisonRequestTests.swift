import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Synchronization
import Testing

/// A car engine whose runtime answers 500 to any prompt with `poison` in it (or to every one), as the agent's
/// openai-local engine reports a runtime's 5xx (`upstream_status_500`), and serves the rest.
final class PoisonedRuntimeEngine: InferenceEngine, Sendable {
    let inner = SyntheticEngine(profile: HardwareProfile.of(.hw4))
    /// A broken runtime: every prompt is poison to it.
    let poisonsEverything: Bool

    init(poisonsEverything: Bool = false) { self.poisonsEverything = poisonsEverything }
    /// Poisoned jobs this engine was given.
    let poisoned = Atomic<Int>(0)

    var models: [ModelOffer] { self.inner.models }
    var slots: Int { self.inner.slots }

    final class Refused: InferenceJobHandle, Sendable {
        func cancel() {}
        func resume() {}
    }

    func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle {
        guard self.poisonsEverything || job.prompt.text.contains("poison") else {
            return self.inner.start(job, on: eventLoop, sink: sink)
        }
        self.poisoned.add(1, ordering: .relaxed)
        let bound = NIOLoopBound(sink, eventLoop: eventLoop)
        eventLoop.execute {
            bound.value.fail(EngineError(code: "upstream_status_500", message: "the inference runtime answered 500"))
        }
        return Refused()
    }
}

@Suite("A poison request", .timeLimit(.minutes(2)))
struct PoisonRequestTests {
    static func cars(_ fleet: FleetFixture) async throws -> [[String: Any]] {
        let (status, body) = try await DashboardTests.admin(fleet, "/admin/cars")
        return try #require(
            try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]], "\(status) \(body)")
    }

    /// helper-80: a request that every car's runtime answers with a 500 was tried on three cars and
    /// benched all three (0.5 s, then probation): the zone's next, well-formed request got a 503, and one
    /// such request a second made half of another client's fail. A runtime's 5xx is now blamed on its car
    /// only when another car serves the request (`FleetRegistry.blameRuntimeError`); the SDKs' retries of
    /// the 502 (helper-81) blame none either.
    @Test("Tried on three cars, three times, it fails alone: no car is blamed")
    func benchesNoCar() async throws {
        let log = CapturedLog()
        try await withFleet(log: log) { fleet in
            let engines = (0..<3).map { _ in PoisonedRuntimeEngine() }
            for (i, engine) in engines.enumerated() { try await fleet.startCar("car-\(i)", engine: engine) }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for _ in 0..<3 {
                let failed = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4, prompt: "a poison prompt")
                ).collect()
                #expect(failed.response?.status.code == 502, "\(failed.body)")
                #expect(failed.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "3")
                // The car it failed on last, as the audit line names it (helper-136: no route header).
                #expect(failed.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
                #expect(failed.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!]?.hasPrefix("v-") == true)
            }
            #expect(engines.map { $0.poisoned.load(ordering: .relaxed) } == [3, 3, 3])
            // Each 502's audit line names where it failed last, a car (helper-132: `fleet.route=-`).
            let failedLines = log.matching("Request served").filter { $0.metadata["fleet.status"] == "502" }
            #expect(failedLines.count == 3 && failedLines.allSatisfy { $0.metadata["fleet.route"] == "car" })
            #expect(failedLines.allSatisfy { $0.metadata["fleet.vehicle"]?.description.hasPrefix("v-") == true })
            let registry = fleet.gateway.core.registry
            #expect(registry.all().map(\.consecutiveFailures) == [0, 0, 0])
            let now = Double(NIODeadline.now().uptimeNanoseconds) / 1e9
            #expect(registry.candidates(model: "fleet-8b", zone: "eu", now: now).count == 3, "none backed off")
            let cars = try await Self.cars(fleet)
            #expect(cars.map { $0["failuresInARow"] as? Int } == [0, 0, 0])
            let served = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4))
                .collect()
            #expect(served.response?.status == .ok && served.body.contains("[DONE]"), "\(served.body)")
            #expect(served.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "1")
        }
    }

    @Test("A car whose runtime answers every request with a 500 is blamed when another car serves them, and backed off")
    func blamesABrokenRuntime() async throws {
        // Round robin: the broken car is tried first on every other request (the predictive policy soon
        // prefers the car that serves, and tries the broken one rarely).
        try await withFleet(configure: { $0.schedulingPolicy = .roundRobin }) { fleet in
            let broken = PoisonedRuntimeEngine(poisonsEverything: true)
            try await fleet.startCar("broken", engine: broken)
            try await fleet.startCar("honest", engine: PoisonedRuntimeEngine())
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Until the broken car has been tried first: its error then counts.
            for _ in 0..<40 where broken.poisoned.load(ordering: .relaxed) < 1 {
                let served = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2))
                    .collect()
                #expect(served.response?.status == .ok && served.body.contains("[DONE]"), "\(served.body)")
            }
            #expect(broken.poisoned.load(ordering: .relaxed) == 1)
            let cars = try await Self.cars(fleet)
            // The broken car (a failure, then a back-off of 0.5 s); not the honest one.
            #expect(cars.compactMap { $0["failuresInARow"] as? Int }.sorted() == [0, 1], "\(cars)")
        }
    }

    /// helper-131: neither the gateway nor the agent named a car whose runtime failed every job.
    @Test("A car failing three times in a row is named in a warning, by its pseudonym")
    func namesAFailingCar() async throws {
        let log = CapturedLog()
        try await withFleet(configure: { $0.schedulingPolicy = .roundRobin }, log: log) { fleet in
            let broken = PoisonedRuntimeEngine(poisonsEverything: true)
            let pseudonym = try await fleet.startCar("broken-vin-7", engine: broken)
            try await fleet.startCar("honest", engine: PoisonedRuntimeEngine())
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let message = "Car failing: its attempts failed in a row; backed off, then tried again"
            // Its back-offs (0.5 s, then 1 s) pass between its failures.
            for _ in 0..<400 where log.matching(message).isEmpty {
                _ = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2)).collect()
                try await Task.sleep(for: .milliseconds(10))
            }
            let lines = log.matching(message)
            try #require(lines.count == 1)
            #expect(lines[0].level == .warning)
            #expect(lines[0].metadata["fleet.vehicle"]?.description == pseudonym)
            #expect(lines[0].metadata["fleet.failures_in_a_row"] == "3")
            #expect(lines[0].metadata["error.type"] == "upstream_status_5xx")
            #expect(!"\(lines[0])".contains("broken-vin-7"), "the vehicle id is never logged")
            // The operator names it from the fleet's ids (`fleetgate token pseudonym --find`).
            let found = try await Subprocess.run(
                "env",
                [
                    "FLEETGATE_FLEET_SECRET=\(FleetFixture.testSecret)", GatewayProcess.binary, "token", "pseudonym",
                    "--vehicle-id", "honest", "--vehicle-id", "broken-vin-7", "--find", pseudonym,
                ])
            #expect(
                found.status == 0 && found.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "broken-vin-7",
                "\(found.stdout) \(found.stderr)")
        }
    }

    /// helper-84: a car's runtime failed a request before its first token, and the retry found the zone's
    /// only other car full. The client got 502 `upstream_error`, as if nothing could serve it, where a full
    /// zone answers 503 `server_overloaded` with `Retry-After` (``CapacityWait``): capacity is coming back.
    @Test("A car fails and the zone's other car is full: 503 server_overloaded with Retry-After, not 502")
    func retryFindsTheZoneFull() async throws {
        try await withFleet { fleet in
            var oneSlot = HardwareProfile.of(.hw4)
            oneSlot.slots = 1
            try await fleet.startCar("full", engine: SyntheticEngine(profile: oneSlot))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // 200 tokens at 20 a second: the car's one slot is taken for 10 s.
            let long = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 200))
            for _ in 0..<500 where long.receivedBytes == 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(long.receivedBytes > 0)
            let broken = PoisonedRuntimeEngine(poisonsEverything: true)
            try await fleet.startCar("broken", engine: broken)

            let refused = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4))
                .collect()
            #expect(broken.poisoned.load(ordering: .relaxed) == 1, "the broken car was tried")
            #expect(refused.response?.status.code == 503, "\(refused.body)")
            #expect(refused.body.contains("server_overloaded"), "\(refused.body)")
            #expect(refused.response?.headerFields[.retryAfter] == "1")
            long.reset()
        }
    }
}
