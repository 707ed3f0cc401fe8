import FleetHTTP2
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Synchronization
import Testing

/// `/v1/responses` refused every `function` tool ("use /v1/chat/completions"), so an app on the
/// Responses API — the OpenAI Agents SDK's default — could not call functions through the fleet at
/// all. A car's runtime now gets the tools in chat's form and its calls come back as `function_call`
/// items; the next turn's `function_call` and `function_call_output` items reach it as the
/// assistant's `tool_calls` and `tool` messages. Checked with the official SDK, which validates every
/// event and object.
@Suite("Responses API: function tools and structured output", .timeLimit(.minutes(2)))
struct ResponsesStructuredTests {
    @Test("Function calls through a car: whole, streamed, the stream helper, and the next turn's outputs")
    func functionTools() async throws {
        let runtime = RecordingRuntime(answer: ToolCallRuntime().eventStream)
        let (server, engine) = try await ServedRuntime.start(runtime, models: ["chat": "tools"])
        defer { server.close(promise: nil) }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            strict = lambda obj: type(obj).model_validate(obj.to_dict())
            tools = [{"type": "function", "name": "weather", "description": "The weather in a city.",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False},
                     {"type": "function", "name": "time", "parameters": {"type": "object"}}]
            ask = dict(model="chat", input="Weather in Paris?", tools=tools, tool_choice="auto")
            items = lambda response: [[o.type] + ([o.call_id, o.name, o.arguments, o.status] if o.type == "function_call"
                                                  else [o.content[0].text]) for o in response.output]
            whole = strict(client.responses.create(**ask))
            events = [strict(e) for e in client.responses.create(stream=True, **ask)]
            with client.responses.stream(**ask) as stream:
                final = strict(stream.get_final_response())
            calls = [o for o in whole.output if o.type == "function_call"]
            outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls]
            turn = strict(client.responses.create(
                model="chat", tools=tools, input=[{"role": "user", "content": "Weather in Paris?"}] + calls + outputs))
            print(json.dumps({
                "whole": items(whole), "final": items(final), "tools": [t.name for t in whole.tools],
                "events": [e.type for e in events],
                "arguments": [e.arguments for e in events if e.type == "response.function_call_arguments.done"],
                "turn": turn.status}))
            """
        try await withFleet { fleet in
            _ = try await fleet.startCar("tool-car", engine: engine)
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            let expected = [
                ["message", "Let me look."], ["function_call", "call_1", "weather", #"{"city":"Paris"}"#, "completed"],
                ["function_call", "call_2", "time", "{}", "completed"],
            ]
            #expect(report["whole"] as? [[String]] == expected, "\(report)")
            #expect(report["final"] as? [[String]] == expected, "\(report)")
            #expect(report["tools"] as? [String] == ["weather", "time"], "\(report)")
            #expect(report["arguments"] as? [String] == [#"{"city":"Paris"}"#, "{}"], "\(report)")
            let events = report["events"] as? [String] ?? []
            #expect(events.filter { $0 == "response.function_call_arguments.delta" }.count == 3, "\(events)")
            #expect(events.last == "response.completed", "\(events)")
            #expect(report["turn"] as? String == "completed", "\(report)")
        }
        // What the runtime read: chat's tools, and the next turn's calls and their outputs.
        let bodies = runtime.bodies.withLock { $0 }
        let first = try #require(
            bodies.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let tool = ((first["tools"] as? [[String: Any]])?.first?["function"]) as? [String: Any]
        #expect(tool?["name"] as? String == "weather" && tool?["description"] as? String == "The weather in a city.")
        #expect(first["tool_choice"] as? String == "auto")
        let last = try #require(
            bodies.last.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let messages = last["messages"] as? [[String: Any]] ?? []
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "tool", "tool"], "\(messages)")
        #expect(
            (messages[safe: 1]?["tool_calls"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [
                "call_1", "call_2",
            ])
        #expect(
            messages[safe: 2]?["tool_call_id"] as? String == "call_1"
                && messages[safe: 2]?["content"] as? String == "sunny")
    }

    /// Structured output was a 400 on `/v1/responses` ("only plain text is"), so the SDK's
    /// `responses.parse` with a schema failed on every call.
    @Test("text.format json_schema through a car: the runtime gets chat's response_format, the SDK parses the answer")
    func structuredOutput() async throws {
        let runtime = RecordingRuntime(
            answer: [
                #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"{\"city\": "},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{"content":"\"Paris\"}"},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            ].map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n")
        let (server, engine) = try await ServedRuntime.start(runtime, models: ["chat": "tools"])
        defer { server.close(promise: nil) }
        let script = """
            import json, sys, openai, pydantic
            class City(pydantic.BaseModel):
                city: str
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            parsed = client.responses.parse(model="chat", input="Where?", text_format=City)
            print(json.dumps({"city": parsed.output_parsed.city, "format": parsed.text.format.type}))
            """
        try await withFleet { fleet in
            _ = try await fleet.startCar("format-car", engine: engine)
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            #expect(report["city"] as? String == "Paris" && report["format"] as? String == "json_schema", "\(report)")
        }
        let body = try #require(
            runtime.bodies.withLock { $0.first }.flatMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            })
        let format = body["response_format"] as? [String: Any]
        #expect(format?["type"] as? String == "json_schema", "\(body)")
        #expect((format?["json_schema"] as? [String: Any])?["name"] as? String == "City", "\(body)")
    }

    /// helper-69: Ollama sends each of several calls whole at `index` 0: the chat SDK's stream helper
    /// joined them into one call (`get_weatherget_weather`), the Responses API made one item of both.
    @Test("Several calls at index 0 (Ollama): two calls for the chat stream helper, chat whole and Responses")
    func ollamaCalls() async throws {
        let call = { (id: String, city: String) in
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"\#(id)","type":"function","function":{"name":"weather","arguments":"{\"city\":\"\#(city)\"}"}}]},"finish_reason":null}]}"#
        }
        let runtime = RecordingRuntime.callingTools([call("a", "Paris"), call("b", "Tokyo")])
        let (server, engine) = try await ServedRuntime.start(runtime, models: ["chat": "tools"])
        defer { server.close(promise: nil) }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
            ask = dict(model="chat", messages=[{"role": "user", "content": "hi"}], tools=tools)
            with client.chat.completions.stream(**ask) as stream:
                streamed = stream.get_final_completion().choices[0].message.tool_calls
            whole = client.chat.completions.create(**ask).choices[0].message.tool_calls
            response = client.responses.create(model="chat", input="hi", tools=[{"type": "function", "name": "weather"}])
            calls = lambda cs: [[c.id, c.function.name, c.function.arguments] for c in cs]
            print(json.dumps({"streamed": calls(streamed), "whole": calls(whole),
                              "responses": [[o.call_id, o.name, o.arguments] for o in response.output]}))
            """
        try await withFleet { fleet in
            _ = try await fleet.startCar("ollama-car", engine: engine)
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            let expected = [["a", "weather", #"{"city":"Paris"}"#], ["b", "weather", #"{"city":"Tokyo"}"#]]
            for key in ["streamed", "whole", "responses"] {
                #expect(report[key] as? [[String]] == expected, "\(key): \(report)")
            }
        }
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? { self.indices.contains(index) ? self[index] : nil }
}

/// Lists the model `tools` and answers every completion with the same event stream, keeping each
/// request body it read.
final class RecordingRuntime: HTTPServerResponder, Sendable {
    let bodies = Mutex<[String]>([])
    let answer: String
    init(answer: String) { self.answer = answer }

    /// A runtime streaming `chunks` (chat chunk JSON, each a piece of a call), then finishing with
    /// `tool_calls` and `[DONE]`.
    static func callingTools(_ chunks: [String]) -> RecordingRuntime {
        RecordingRuntime(
            answer: (chunks + [#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#])
                .map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n")
    }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            return ToolCallRuntime().stream(stream, didReceive: request, connection: connection)
        }
        return Recorder(stream: stream, runtime: self)
    }

    private final class Recorder: HTTPStreamDelegate {
        let stream: any HTTPStream
        let runtime: RecordingRuntime
        var body = ByteBuffer()
        init(stream: any HTTPStream, runtime: RecordingRuntime) {
            self.stream = stream
            self.runtime = runtime
        }
        func streamDidReceiveData(_ data: ByteBuffer) { self.body.writeImmutableBuffer(data) }
        func streamDidReceiveEnd(trailers: HTTPFields?) {
            let body = String(buffer: self.body)
            self.runtime.bodies.withLock { $0.append(body) }
            self.stream.sendResponse(
                status: .ok, contentType: "text/event-stream", body: ByteBuffer(string: self.runtime.answer))
        }
        func streamWritabilityDidChange(isWritable: Bool) {}
        func streamDidClose(error: HTTPStreamError?) {}
    }
}
