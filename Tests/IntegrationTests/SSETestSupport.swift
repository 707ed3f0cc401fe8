import FleetProtocol
import FleetTesting
import Foundation
import Testing

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

/// Runs `script` with the official `openai` SDK's Python (`FLEETGATE_PYTHON`), the gateway's base URL
/// its first argument; the script prints one JSON object, returned.
func runSDK(_ script: String, baseURL: String) async throws -> [String: Any] {
    let python = try #require(ProcessInfo.processInfo.environment["FLEETGATE_PYTHON"])
    let run = try await Subprocess.run(python, ["-c", script, baseURL], timeout: 60)
    try #require(run.status == 0, "\(run.stderr.suffix(2_000))")
    return try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
}
