import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import HTTPTypes
import NIOCore
import Synchronization
import Testing

/// A car engine whose runtime answers 500 to any prompt with `poison` in it, as the agent's
/// openai-local engine reports a runtime's 5xx (`upstream_status_500`), and serves the rest.
final class PoisonedRuntimeEngine: InferenceEngine, Sendable {
    let inner = SyntheticEngine(profile: HardwareProfile.of(.hw4))
    /// Poisoned jobs this engine was given.
    let poisoned = Atomic<Int>(0)

    var models: [ModelOffer] { self.inner.models }
    var slots: Int { self.inner.slots }

    final class Refused: InferenceJobHandle, Sendable {
        func cancel() {}
        func resume() {}
    }

    func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle {
        guard job.prompt.text.contains("poison") else { return self.inner.start(job, on: eventLoop, sink: sink) }
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
    /// Session 31: a request that every car's runtime answers with a 500 was tried on three cars and
    /// benched all three (0.5 s, then probation: one job each until one succeeded). A runtime's 5xx now
    /// counts against its car only at the third in a row (`FleetRegistry.answeredErrorsToFail`).
    @Test("Tried on three cars, it fails alone: none of them is backed off or put on probation")
    func benchesNoCar() async throws {
        try await withFleet { fleet in
            let engines = (0..<3).map { _ in PoisonedRuntimeEngine() }
            for (i, engine) in engines.enumerated() { try await fleet.startCar("car-\(i)", engine: engine) }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let failed = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4, prompt: "a poison prompt")
            ).collect()
            #expect(failed.response?.status.code == 502, "\(failed.body)")
            #expect(failed.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "3")
            #expect(engines.map { $0.poisoned.load(ordering: .relaxed) } == [1, 1, 1])

            let registry = fleet.gateway.core.registry
            #expect(registry.all().map(\.consecutiveFailures) == [0, 0, 0])
            let now = Double(NIODeadline.now().uptimeNanoseconds) / 1e9
            #expect(registry.candidates(model: "fleet-8b", zone: "eu", now: now).count == 3, "none backed off")
            let served = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4))
                .collect()
            #expect(served.response?.status == .ok && served.body.contains("[DONE]"), "\(served.body)")
            #expect(served.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "1")
        }
    }
}
