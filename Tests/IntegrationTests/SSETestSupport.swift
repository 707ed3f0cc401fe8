import FleetProtocol
import Foundation
import Testing

@testable import FleetGate

/// Splits an SSE body into its `data:` payloads, checking OpenAI's framing as it goes.
func ssePayloads(_ body: String) throws -> [String] {
    var payloads: [String] = []
    let events = body.components(separatedBy: "\n\n")
    try #require(events.last == "", "an SSE body ends with a blank line")
    for event in events.dropLast() {
        try #require(event.hasPrefix("data: "), "every event is a single data line: \(event.prefix(40))")
        try #require(!event.contains("\n"), "one line per event")
        payloads.append(String(event.dropFirst(6)))
    }
    return payloads
}

/// Decodes the chunk payloads (all but `[DONE]`).
func chunks(_ payloads: [String]) throws -> [CompletionChunk] {
    try payloads.filter { $0 != SSE.done }.map { try JSONDecoder().decode(CompletionChunk.self, from: Data($0.utf8)) }
}

func chatBody(
    model: String = "fleet-8b", stream: Bool, maxTokens: Int? = nil, usage: Bool = false,
    prompt: String = "Hello, fleet"
)
    -> String
{
    var fields = [
        "\"model\":\"\(model)\"", "\"stream\":\(stream)",
        "\"messages\":[{\"role\":\"user\",\"content\":\"\(prompt)\"}]",
    ]
    if let maxTokens { fields.append("\"max_tokens\":\(maxTokens)") }
    if usage { fields.append("\"stream_options\":{\"include_usage\":true}") }
    return "{" + fields.joined(separator: ",") + "}"
}

@Suite("First-token detection")
struct FirstTokenTests {
    @Test(
        "Role chunks hold; content, text, finish and non-chunks count as output",
        arguments: [
            (
                "{\"choices\":[{\"delta\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}]}",
                false
            ),
            ("{\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null,\"index\":0}]}", true),
            ("{\"choices\":[{\"text\":\"a\",\"index\":0,\"finish_reason\":null}]}", true),
            ("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\",\"index\":0}]}", true),
            ("{\"error\":{\"message\":\"x\"}}", true),
        ])
    func detection(json: String, carries: Bool) throws {
        var decoder = SSE.Decoder()
        let event = try #require(try decoder.feed(SSE.event(json)).first)
        #expect(Aggregate.carriesToken(event) == carries)
    }
}
