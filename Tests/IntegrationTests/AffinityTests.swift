import AsyncHTTPClient
import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Testing

/// Prefix-cache affinity through the gateway on the real model (issue #14): two cars, each in
/// front of its own llama-cpp-python server with a prompt cache. With `CI=true` a missing runtime fails.
@Suite(
    "Prefix-cache affinity on the real model", .serialized,
    .enabled(if: LocalRuntime.required || ProcessInfo.processInfo.environment["FLEETGATE_MODEL"] != nil))
struct AffinityTests {
    static func body(_ messages: [(String, String)], maxTokens: Int, stream: Bool) -> String {
        let list = messages.map { #"{"role":"\#($0.0)","content":"\#($0.1)"}"# }.joined(separator: ",")
        return #"{"model":"\#(LocalRuntime.model)","stream":\#(stream),"temperature":0,"max_tokens":\#(maxTokens),"messages":[\#(list)]}"#
    }

    /// Sends one turn (not streamed); returns the car that served it and the answer.
    static func turn(_ client: RecordingClient, _ messages: [(String, String)]) async throws -> (car: String, answer: String) {
        let result = await (try await client.post("/v1/chat/completions", json: Self.body(messages, maxTokens: 8, stream: false))).collect()
        let car = try #require(result.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.body.utf8)) as? [String: Any])
        let message = try #require(((object["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any])
        return (car, (message["content"] as? String ?? "").replacingOccurrences(of: "\"", with: "'"))
    }

    @Test("Turn 2 goes to the car holding turn 1 when both are idle, and to the other car when that one is busy",
          .timeLimit(.minutes(3)))
    func secondTurnFollowsThePrefix() async throws {
        async let startA = LocalRuntime.start(promptCache: true)
        async let startB = LocalRuntime.start(promptCache: true)
        let runtimes = try await [startA, startB]
        defer { runtimes.forEach { $0.stop() } }
        var configuration = OpenAILocalEngine.Configuration(baseURL: runtimes[0].baseURL, slots: 1)
        configuration.promptCache = PromptCacheCapacity(sequences: LocalRuntime.promptCacheSequences, tokens: 2_048)
        let engineA = try await OpenAILocalEngine.connect(configuration, client: .shared)
        configuration.baseURL = runtimes[1].baseURL
        let engineB = try await OpenAILocalEngine.connect(configuration, client: .shared)
        try await withFleet { fleet in
            let cars = [
                try await fleet.startCar("affinity-a", engine: engineA),
                try await fleet.startCar("affinity-b", engine: engineB),
            ]
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Both cars serve one request first (at once: one slot each), so each has measured its
            // rates; a car never observed is believed at its class's advertised rate.
            async let warmA = Self.turn(client, [("user", "Say hello.")])
            async let warmB = Self.turn(client, [("user", "Say goodbye.")])
            _ = try await (warmA, warmB)
            let preamble = String(repeating: "Answer in one short sentence, plainly and without lists. ", count: 20)
            // Both idle: the second turn follows the first (for a few conversations, so a tie
            // broken towards the same car by chance would not pass).
            for topic in ["tides", "bees"] {
                var messages = [("system", "You are a terse assistant who knows about \(topic). " + preamble),
                                ("user", "Tell me one fact about \(topic).")]
                let first = try await Self.turn(client, messages)
                messages += [("assistant", first.answer), ("user", "And another one?")]
                let second = try await Self.turn(client, messages)
                #expect(second.car == first.car, "\(topic): turn 1 on \(first.car), turn 2 on \(second.car)")
            }
            // The holder busy (its one slot taken by a long answer): turn 2 goes to the other car.
            var messages = [("system", "You are a terse assistant who knows about comets. " + preamble),
                            ("user", "Tell me one fact about comets.")]
            let first = try await Self.turn(client, messages)
            messages += [("assistant", first.answer), ("user", "And another one?")]
            let long = try await client.post(
                "/v1/chat/completions", json: Self.body(messages, maxTokens: 400, stream: true))
            try await waitUntil(timeout: .seconds(30), "the long answer streaming") {
                String(decoding: long.body, as: UTF8.self).contains("\"content\":\"")
            }
            let busy = fleet.gateway.core.registry.all().filter { $0.inFlight > 0 }.map(\.descriptor.pseudonym)
            #expect(busy == [first.car], "the long answer also follows the prefix")
            let second = try await Self.turn(client, messages)
            #expect(cars.contains(second.car))
            #expect(second.car != first.car, "turn 2 waited for the busy holder \(first.car)")
            long.reset()
        }
    }
}
