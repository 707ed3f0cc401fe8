import FleetProtocol
import FleetTesting
import Foundation
import NIOCore
import Testing

/// The car path kept two counts of its runtime's usage: an app lost the cached prompt tokens and the
/// reasoning tokens that central's answers carried (note 25). Checked with the official SDK, which
/// validates every chunk and object.
@Suite("Car usage details", .timeLimit(.minutes(2)))
struct CarUsageDetailsTests {
    static func body(details: Bool) -> String {
        let usage =
            details
            ? #"{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}"#
            : #"{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}"#
        return [
            #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
            #"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            #"{"choices":[],"usage":\#(usage)}"#,
        ].map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n"
    }

    @Test("A runtime's cached and reasoning tokens reach the app: chat streamed and whole, and the Responses API")
    func details() async throws {
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            strict = lambda obj: type(obj).model_validate(obj.to_dict())
            ask = dict(model="chat", messages=[{"role": "user", "content": "hi"}])
            def counts(usage):
                cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
                reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else None
                return [usage.prompt_tokens, usage.completion_tokens, cached, reasoning]
            whole = strict(client.chat.completions.create(**ask))
            chunks = [strict(c) for c in client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **ask)]
            response = strict(client.responses.create(model="chat", input="hi"))
            print(json.dumps({
                "whole": counts(whole.usage), "streamed": counts(chunks[-1].usage),
                "responses": [response.usage.input_tokens_details.cached_tokens,
                              response.usage.output_tokens_details.reasoning_tokens]}))
            """
        for details in [true, false] {
            let (runtime, engine) = try await ServedRuntime.start(
                CannedRuntime(body: Self.body(details: details)), models: ["chat": "canned"])
            defer { runtime.close(promise: nil) }
            try await withFleet { fleet in
                _ = try await fleet.startCar("usage-car", engine: engine)
                let report = try await runSDK(script, baseURL: fleet.baseURL)
                let expected: [Any] = details ? [9, 4, 3, 2] : [9, 4, NSNull(), NSNull()]
                for key in ["whole", "streamed"] {
                    #expect((report[key] as? [Any]).map { "\($0)" } == "\(expected)", "\(key), details: \(details)")
                }
                #expect(report["responses"] as? [Int] == (details ? [3, 2] : [0, 0]), "details: \(details)")
            }
        }
    }
}
