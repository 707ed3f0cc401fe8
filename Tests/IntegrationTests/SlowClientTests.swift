import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import HTTPTypes
import Testing

/// helper-85: clients that read slowly held the cars' slots, since a car's stream credit came back only
/// as its client drained. The gateway now holds a slow client's answer, up to a bound a stream and
/// over all, so the car finishes its job and serves others.
@Suite("A slow client does not hold its car")
struct SlowClientTests {
    @Test(
        "A slow client's answer is held in the gateway: the car's job ends and its slot is free; past the stream's bound the car waits"
    )
    func heldAnswer() async throws {
        let perStream = 256 * 1024
        try await withFleet(
            configure: { $0.limits.maxBufferedAnswerBytesPerStream = perStream }
        ) { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.01))  // 5,000 tok/s
            let inFlight = { fleet.gateway.core.registry.all().first?.inFlight ?? -1 }
            let window = 16 * 1024
            // About 200 bytes of SSE a token: 800 tokens are ≈ 160 KB, within the stream's bound.
            let first = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { first.close() }
            let short = try await first.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 800), mode: .manual)
            try await waitUntil("the car finished the slow client's job") {
                car.engine.tokensGenerated == 800 && inFlight() == 0
            }
            #expect(short.receivedBytes <= window + 1024, "the client read \(short.receivedBytes) bytes")
            let heldForFirst = fleet.gateway.core.answerBytesHeld
            #expect(heldForFirst > 40_000 && heldForFirst <= perStream, "held \(heldForFirst)")
            let gauge = try await fleet.series("fleet_buffered_bytes", with: ["kind": "answer"])
            #expect(gauge.map(\.value) == [Double(heldForFirst)])

            // 8,000 tokens (≈ 1.6 MB) are past the bound: the car waits for this client, holding its slot.
            let second = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { second.close() }
            let long = try await second.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 8_000), mode: .manual)
            try await waitUntil("the engine paused") {
                let before = car.engine.tokensGenerated
                try await Task.sleep(for: .milliseconds(200))
                return before > 800 && car.engine.tokensGenerated == before
            }
            #expect(inFlight() == 1)
            let generated = car.engine.tokensGenerated - 800
            #expect(generated < 4_000, "the engine ran ahead by \(generated) tokens")
            let held = fleet.gateway.core.answerBytesHeld
            #expect(held > heldForFirst && held <= heldForFirst + perStream, "held \(held)")

            // Both clients catch up and lose nothing; then nothing is held.
            short.resumeReading()
            long.resumeReading()
            for (stream, tokens) in [(short, 800), (long, 8_000)] {
                let result = await stream.collect()
                let decoded = try chunks(try ssePayloads(result.body))
                #expect(
                    decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == tokens)
            }
            try await waitUntil("nothing held") { fleet.gateway.core.answerBytesHeld == 0 }
            #expect(inFlight() == 0)
        }
    }
}
