import FleetAgent
import FleetGate
import FleetTesting
import Foundation
import NIOCore
import Synchronization
import Testing

/// A tool loop through a car whose runtime streams calls as llama-cpp-python does, driven by the
/// official SDK the way apps and frameworks drive it (helper-71: every second turn failed).
@Suite("Tool loops through a car", .timeLimit(.minutes(2)))
struct ToolLoopTests {
    @Test(
        "Calls stream as OpenAI's (name and id once); the next turn's null or missing content reaches the runtime as text"
    )
    func llamaStyleLoop() async throws {
        // llama-cpp-python repeats the id, type and name in every piece of a call.
        let piece = { (arguments: String) in
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_w","type":"function","function":{"name":"weather","arguments":"\#(arguments)"}}]},"finish_reason":null}]}"#
        }
        let runtime = RecordingRuntime.callingTools([piece(#"{\"city\":"#), piece(#"\"Paris\"}"#)])
        let (server, engine) = try await ServedRuntime.start(runtime, models: ["chat": "tools"])
        defer { server.close(promise: nil) }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
            messages = [{"role": "user", "content": "Weather in Paris?"}]
            with client.chat.completions.stream(model="chat", messages=messages, tools=tools) as stream:
                message = stream.get_final_completion().choices[0].message
            call = message.tool_calls[0]
            # The SDK's own message (content null), then as `exclude_none` frameworks dump it (no content).
            statuses = []
            for dumped in [message.model_dump(), message.model_dump(exclude_none=True)]:
                dumped = {k: v for k, v in dumped.items() if k in ("role", "content", "tool_calls")}
                turn = messages + [dumped, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
                raw = client.chat.completions.with_raw_response.create(model="chat", messages=turn, tools=tools)
                statuses.append(raw.http_response.status_code)
            print(json.dumps({"name": call.function.name, "id": call.id, "arguments": call.function.arguments,
                              "statuses": statuses}))
            """
        try await withFleet { fleet in
            _ = try await fleet.startCar("llama-car", engine: engine)
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            #expect(report["name"] as? String == "weather", "\(report)")
            #expect(report["id"] as? String == "call_w", "\(report)")
            #expect(report["arguments"] as? String == #"{"city":"Paris"}"#, "\(report)")
            #expect(report["statuses"] as? [Int] == [200, 200], "\(report)")
        }
        let bodies = runtime.bodies.withLock { $0 }
        #expect(bodies.count == 3)
        for body in bodies.dropFirst() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let messages = try #require(object["messages"] as? [[String: Any]])
            #expect(messages[1]["content"] as? String == "", "the runtime read \(body)")
            #expect((messages[1]["tool_calls"] as? [[String: Any]])?.count == 1, "\(body)")
            #expect(messages[2]["tool_call_id"] as? String == "call_w", "\(body)")
        }
    }
}
