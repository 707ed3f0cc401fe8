import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Streaming through gateway and cars", .timeLimit(.minutes(2)))
struct StreamingTests {
    @Test("A streamed chat completion arrives as OpenAI SSE chunks ending in [DONE], with route headers")
    func streamedRoundTrip() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 12, usage: true)
            ).collect()
            let response = try #require(result.response)
            #expect(response.status == .ok)
            #expect(response.headerFields[.contentType] == "text/event-stream")
            #expect(response.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
            #expect(response.headerFields[HTTPField.Name("x-fleet-region")!] == "eu-central")
            #expect(response.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")
            let pseudonym = try #require(response.headerFields[HTTPField.Name("x-fleet-vehicle")!])
            #expect(pseudonym.hasPrefix("v-") && !pseudonym.contains("car-a"))
            #expect(result.ended && result.error == nil)

            let payloads = try ssePayloads(result.body)
            #expect(payloads.last == "[DONE]")
            let decoded = try chunks(payloads)
            #expect(decoded.allSatisfy { $0.object == "chat.completion.chunk" && $0.model == "fleet-8b" })
            #expect(Set(decoded.map(\.id)).count == 1)
            #expect(decoded.first?.choices.first?.delta?.role == "assistant")
            let content = decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }
            #expect(content.count == 12)
            #expect(decoded.flatMap(\.choices).last?.finishReason == "length")
            let usage = try #require(decoded.last?.usage)
            #expect(usage.completionTokens == 12 && decoded.last?.choices.isEmpty == true)
        }
    }

    @Test("Without include_usage the usage chunk is not relayed")
    func usageStripped() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3))
                .collect()
            let decoded = try chunks(try ssePayloads(result.body))
            #expect(decoded.count == 5)  // role, 3 tokens, finish
            #expect(decoded.allSatisfy { $0.usage == nil })
        }
    }

    @Test("A non-streamed completion is one JSON object with usage and the route headers")
    func nonStreamed() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 7))
                .collect()
            #expect(result.response?.status == .ok)
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
            let completion = try JSONDecoder().decode(CompletionResponse.self, from: Data(result.body.utf8))
            #expect(completion.object == "chat.completion")
            #expect(completion.usage.completionTokens == 7)
            let text = try #require(completion.choices.first?.message?.content)
            // Synthetic text is a function of (seed, index): the same request gives the same words.
            let seed = SyntheticText.seed(for: Prompt("user: Hello, fleet"), requested: nil)
            #expect(text == (0..<7).map { SyntheticText.token(seed: seed, index: $0) }.joined())
            #expect(completion.choices.first?.finishReason == "length")
        }
    }

    @Test("Legacy /v1/completions streams text_completion chunks; a list of one prompt is that prompt")
    func legacyCompletions() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let body = "{\"model\":\"fleet-8b\",\"prompt\":\"Once\",\"max_tokens\":4,\"stream\":true}"
            let result = try await client.post("/v1/completions", json: body).collect()
            let decoded = try chunks(try ssePayloads(result.body))
            #expect(decoded.allSatisfy { $0.object == "text_completion" })
            #expect(decoded.compactMap { $0.choices.first?.text }.filter { !$0.isEmpty }.count == 4)
            #expect(decoded.allSatisfy { $0.id.hasPrefix("cmpl-") }, "OpenAI's legacy ids: \(decoded.map(\.id))")

            // A list of one prompt (LangChain's OpenAI LLM sends it so) is that prompt: the same text.
            let listed = try await client.post(
                "/v1/completions", json: body.replacingOccurrences(of: #""Once""#, with: #"["Once"]"#)
            )
            .collect()
            #expect(listed.response?.status == .ok)
            let listedText = try chunks(try ssePayloads(listed.body)).compactMap { $0.choices.first?.text }.joined()
            #expect(listedText == decoded.compactMap { $0.choices.first?.text }.joined())
            // More than one: a clear 400 naming the field.
            let two = try await client.post(
                "/v1/completions", json: body.replacingOccurrences(of: #""Once""#, with: #"["a", "b"]"#)
            )
            .collect()
            #expect(two.response?.status.code == 400)
            let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(two.body.utf8))
            #expect(error.error.param == "prompt" && error.error.message.contains("2 prompts"), "\(two.body)")
            // Without max_tokens, 16 tokens and `length`, as OpenAI's legacy completions (helper-122: 139).
            let unbounded = try await client.post(
                "/v1/completions", json: #"{"model":"fleet-8b","prompt":"Once","stream":false}"#
            ).collect()
            #expect(unbounded.body.contains(#""completion_tokens":16"#), "\(unbounded.body)")
            #expect(unbounded.body.contains(#""finish_reason":"length""#), "\(unbounded.body)")
        }
    }

    @Test("No buffering: the first token reaches the client while the engine has produced only that token")
    func noBuffering() async throws {
        // hw4 at 20 tok/s slowed 100×: the second token is 5 s after the first; prefill of a short prompt is ~0.25 s.
        try await withFleet(cars: [CarSpec("slow", hardware: .hw4, slowdown: 100)]) { fleet in
            let car = try #require(fleet.gateway.core.registry.all().first)
            _ = car
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let started = ContinuousClock.now
            let stream = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 50, prompt: "Hi"))
            var text = ""
            let bound = stream.bound()
            defer { bound.cancel() }
            for await event in stream.events {
                if case .data(let data) = event {
                    text += String(buffer: data)
                    if text.contains("\"content\":\"") && text.components(separatedBy: "\n\n").count >= 3 { break }
                }
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(3), "first token arrived after \(elapsed)")
            stream.reset()
        }
    }

    @Test("Cancel: when the client resets, the car's engine stops generating")
    func cancelStopsEngine() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.5))  // 100 tok/s
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5000))
            try await waitUntil("a few tokens generated") { car.engine.tokensGenerated >= 5 }
            #expect(car.engine.activeJobs == 1)
            stream.reset()
            try await waitUntil("engine job cancelled") { car.engine.jobsCancelled == 1 && car.engine.activeJobs == 0 }
            let stopped = car.engine.tokensGenerated
            try await Task.sleep(for: .milliseconds(300))  // 30 more tokens would have come at 100 tok/s
            #expect(car.engine.tokensGenerated == stopped)
            #expect(stopped < 5000)
            try await waitUntil("slot released") { fleet.gateway.core.registry.all().first?.inFlight == 0 }
        }
    }

    @Test("Clients cancelling hundreds of streams a second do not cost the car its tunnel")
    func cancelStormKeepsTunnel() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.1))
            #expect(car.car.tunnel.connectionCount == 1)
            // Three client connections (each under the gateway's 200 resets a second of its own), every
            // stream cancelled at its first token: the car's one tunnel carries all the cancels.
            let cancelled = try await withThrowingTaskGroup(of: Int.self) { group in
                for connection in 0..<3 {
                    group.addTask {
                        let client = try await RecordingClient.connect(port: fleet.clientPort)
                        defer { client.close() }
                        var cancelled = 0
                        for i in 0..<120 {
                            let stream = try await client.post(
                                "/v1/chat/completions",
                                json: chatBody(stream: true, maxTokens: 200, prompt: "cancel \(connection) \(i)"))
                            let bound = stream.bound()
                            for await event in stream.events {
                                if case .data = event { break }
                            }
                            bound.cancel()
                            stream.reset()
                            cancelled += 1
                        }
                        return cancelled
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(cancelled == 360)
            try await waitUntil("every slot released") { fleet.gateway.core.registry.all().first?.inFlight == 0 }
            #expect(car.car.tunnel.connectionCount == 1, "the tunnel was closed and dialled again")
            let metrics = try await DashboardTests.admin(fleet, "/metrics").1
            #expect(!metrics.contains(#"fleet_attempt_failures_total{kind="car_reset"}"#), "\(metrics)")
        }
    }

    @Test("A car lost before its first token: the request is served by another car, unbroken")
    func failoverBeforeFirstToken() async throws {
        try await withFleet { fleet in
            // The first car takes ~5 s to prefill, so its tunnel can be cut before the first token.
            let slow = try await fleet.startCar(CarSpec("slow-car", hardware: .hw4, slowdown: 2000))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 6))
            try await waitUntil("job running on the slow car") { slow.engine.activeJobs == 1 }
            let fast = try await fleet.startCar(CarSpec("fast-car", slowdown: 0.1))
            slow.car.tunnel.disconnect()
            let result = await stream.collect()
            let response = try #require(result.response)
            #expect(response.status == .ok)
            #expect(response.headerFields[HTTPField.Name("x-fleet-vehicle")!] == fast.pseudonym)
            #expect(response.headerFields[HTTPField.Name("x-fleet-attempts")!] == "2")
            let decoded = try chunks(try ssePayloads(result.body))
            #expect(decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == 6)
            #expect(fast.engine.tokensGenerated == 6)
        }
    }

    @Test(
        "Slow reader past the gateway's hold: the engine is suspended and buffering stays bounded; another client on the same car streams on"
    )
    func slowReader() async throws {
        // No answer held for slow clients (SlowClientTests has the hold): flow control end to end.
        try await withFleet(configure: { $0.limits.maxBufferedAnswerBytes = 0 }) { fleet in
            // 5,000 tok/s: far faster than the window lets through.
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.01))
            let window = 16 * 1024
            let stalled = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { stalled.close() }
            let tokens = 20_000  // ≈ 200 bytes of SSE each: ≈ 4 MB, 240× the window
            let slow = try await stalled.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: tokens), mode: .manual)
            // The engine runs until windows and buffers fill, then pauses.
            try await waitUntil("engine paused") {
                let before = car.engine.tokensGenerated
                try await Task.sleep(for: .milliseconds(200))
                return before > 0 && car.engine.tokensGenerated == before
            }
            let generated = car.engine.tokensGenerated
            #expect(generated < tokens / 10, "engine ran ahead by \(generated) tokens")
            // What the engine produced beyond what the client took is all the buffering on the path:
            // client window + gateway stream buffer + tunnel window + agent stream buffer.
            let inFlightBytes = generated * 200 - slow.receivedBytes
            #expect(inFlightBytes < 512 * 1024, "\(inFlightBytes) bytes buffered between engine and client")
            #expect(slow.receivedBytes <= window + 1024)

            // Meanwhile another client on the same car is served in full.
            let other = try await RecordingClient.connect(port: fleet.clientPort)
            defer { other.close() }
            let second = try await other.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 50))
                .collect()
            #expect(second.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == car.pseudonym)
            #expect(try chunks(try ssePayloads(second.body)).count == 52)

            // The slow reader catches up and loses nothing.
            slow.resumeReading()
            let result = await slow.collect()
            let decoded = try chunks(try ssePayloads(result.body))
            #expect(decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == tokens)
        }
    }
}

@Suite("Predictive routing through the gateway")
struct PredictiveRoutingTests {
    @Test(
        "Outcomes flow back: after a few jobs the gateway prefers the car that really is faster, and says what it predicted"
    )
    func learnsFromOutcomes() async throws {
        try await withFleet { fleet in
            // Same class and advertised rates; one is secretly 6× slower (the hidden slowdown).
            // The slow car serves alone first; then a new car arrives, unknown to the gateway.
            let slow = try await fleet.startCar(CarSpec("slow-car", hardware: .hw4, slowdown: 6))
            var fast: TestCar?
            var served: [String] = []
            for i in 0..<8 {
                if i == 2 { fast = try await fleet.startCar(CarSpec("fast-car", hardware: .hw4, slowdown: 1)) }
                let client = try await RecordingClient.connect(port: fleet.clientPort)
                defer { client.close() }
                let prompt = String(repeating: "tell me about the fleet ", count: 40)
                let stream = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3, prompt: prompt))
                let result = await stream.collect()
                let response = try #require(result.response)
                #expect(response.status == .ok)
                let predicted = try #require(response.headerFields[HTTPField.Name("x-fleet-predicted-ttft-ms")!])
                #expect((Int(predicted) ?? 0) > 0)
                served.append(response.headerFields[HTTPField.Name("x-fleet-vehicle")!] ?? "-")
            }
            #expect(served.prefix(2).allSatisfy { $0 == slow.pseudonym }, "\(served)")
            #expect(served.suffix(4).allSatisfy { $0 == fast?.pseudonym }, "\(served)")
            let learned = try #require(
                fleet.gateway.core.registry.all().first { $0.descriptor.vehicleID == "slow-car" })
            #expect((learned.learned["fleet-8b"]?.prefillSlowdown ?? 0) > 2)
            #expect((learned.learned["fleet-8b"]?.decodeSlowdown ?? 0) > 2)
        }
    }
}
