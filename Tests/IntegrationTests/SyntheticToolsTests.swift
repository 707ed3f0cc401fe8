import FleetProtocol
import FleetTesting
import Testing

/// The demo's synthetic cars answered every request in prose: an app's tool-calling and
/// structured-output code could not run against the demo at all (helper-127). They now call a
/// function when the tools and tool choice call for one, and write JSON of the schema asked for;
/// checked with the official SDK, which validates every object, the parsed ones with pydantic.
@Suite("Synthetic cars: function calls and structured output", .timeLimit(.minutes(2)))
struct SyntheticToolsTests {
    static let script = #"""
        import json, sys, openai, pydantic
        client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
        tools = [{"type": "function", "function": {"name": "weather", "parameters": {
            "type": "object", "required": ["city", "days"], "additionalProperties": False,
            "properties": {"city": {"type": "string", "minLength": 2}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
                           "unit": {"enum": ["C", "F"]}}}}}]
        ask = [{"role": "user", "content": "Weather in Paris?"}]
        whole = client.chat.completions.create(model="fleet-8b", messages=ask, tools=tools)
        call = whole.choices[0].message.tool_calls[0]
        args = json.loads(call.function.arguments)
        streamed, finish = {}, None
        for chunk in client.chat.completions.create(model="fleet-8b", messages=ask, tools=tools, stream=True):
            for piece in chunk.choices[0].delta.tool_calls or []:
                entry = streamed.setdefault(piece.index, {"name": "", "arguments": ""})
                entry["name"] += piece.function.name or ""
                entry["arguments"] += piece.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        answered = client.chat.completions.create(model="fleet-8b", tools=tools, messages=ask + [
            whole.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
        declined = client.chat.completions.create(model="fleet-8b", messages=ask, tools=tools, tool_choice="none", max_tokens=5)
        class Forecast(pydantic.BaseModel):
            city: str
            days: int
            windy: bool
            hours: list[float]
        parsed = client.chat.completions.parse(model="fleet-8b", messages=ask, response_format=Forecast)
        loose = client.chat.completions.create(model="fleet-8b", messages=ask, response_format={"type": "json_object"})
        resp = client.responses.parse(model="fleet-8b", input="Weather in Paris?", text_format=Forecast)
        print(json.dumps({
            "finish": whole.choices[0].finish_reason, "name": call.function.name, "id": call.id, "args": args,
            "streamed": streamed, "streamed_finish": finish,
            "answered": [answered.choices[0].finish_reason, str(answered.choices[0].message.tool_calls is None),
                         str(len(answered.choices[0].message.content) > 0)],
            "declined": [declined.choices[0].finish_reason, str(declined.choices[0].message.tool_calls is None)],
            "parsed": parsed.choices[0].message.parsed.model_dump(), "loose": json.loads(loose.choices[0].message.content),
            "responses": resp.output_parsed.model_dump()}))
        """#

    @Test(
        "Tools: a call with arguments of the schema, whole and streamed, then an answer to its result; JSON of a schema"
    )
    func toolsAndJSON() async throws {
        try await withFleet { fleet in
            _ = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.05))
            let report = try await runSDK(Self.script, baseURL: fleet.baseURL)
            #expect(report["finish"] as? String == "tool_calls", "\(report)")
            #expect(report["name"] as? String == "weather")
            #expect((report["id"] as? String)?.hasPrefix("call_") == true, "\(report)")
            let args = report["args"] as? [String: Any] ?? [:]
            #expect((args["city"] as? String)?.count ?? 0 >= 2, "\(args)")
            #expect((1...7).contains(args["days"] as? Int ?? 0), "\(args)")
            #expect(["C", "F"].contains(args["unit"] as? String ?? ""), "\(args)")
            // The same prompt, the same seed: the streamed call is the whole one in pieces.
            let streamed = (report["streamed"] as? [String: Any])?["0"] as? [String: String]
            #expect(streamed?["name"] == "weather", "\(report)")
            #expect(streamed.flatMap { $0["arguments"] }.map { $0.count > 8 } == true, "\(report)")
            #expect(report["streamed_finish"] as? String == "tool_calls")
            #expect(report["answered"] as? [String] == ["stop", "True", "True"], "\(report)")
            #expect(report["declined"] as? [String] == ["length", "True"], "\(report)")
            let parsed = report["parsed"] as? [String: Any] ?? [:]
            #expect(parsed["city"] is String && parsed["days"] is Int && parsed["windy"] is Bool, "\(parsed)")
            #expect((parsed["hours"] as? [Any])?.isEmpty == false, "\(parsed)")
            #expect((report["loose"] as? [String: Any])?["answer"] is String, "\(report)")
            #expect((report["responses"] as? [String: Any])?["city"] is String, "\(report)")
        }
    }
}
