import FleetGate
import FleetTesting
import Foundation
import NIOCore
import Prometheus
import Testing

/// helper-72: a car's `usage` reached the app as the car said it. A car whose runtime claims a
/// million completion tokens for a 2-token answer now bills the app at most `max_tokens`, and the
/// gateway counts and logs it.
@Suite("A car's usage is bounded by the request", .timeLimit(.minutes(2)))
struct UsageBoundsTests {
    @Test("The official SDK sees bounded usage, streamed and whole; the clamp is counted")
    func inflatedUsage() async throws {
        let chunks = [
            #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}"#,
            #"{"choices":[],"usage":{"prompt_tokens":9000000,"completion_tokens":1000000,"total_tokens":10000000}}"#,
        ]
        let runtime = RecordingRuntime(answer: chunks.map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n")
        let (server, engine) = try await ServedRuntime.start(runtime, models: ["chat": "tools"])
        defer { server.close(promise: nil) }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
            ask = dict(model="chat", max_tokens=16, messages=[{"role": "user", "content": "Hello"}])
            whole = client.chat.completions.create(**ask).usage
            events = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **ask))
            streamed = [e.usage for e in events if e.usage][-1]
            print(json.dumps({"whole": [whole.prompt_tokens, whole.completion_tokens, whole.total_tokens],
                              "streamed": [streamed.prompt_tokens, streamed.completion_tokens, streamed.total_tokens]}))
            """
        try await withFleet { fleet in
            _ = try await fleet.startCar("inflating-car", engine: engine)
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            for key in ["whole", "streamed"] {
                let usage = try #require(report[key] as? [Int], "\(report)")
                #expect(usage[1] == 16, "completion_tokens bounded by max_tokens: \(report)")
                #expect(usage[0] > 0 && usage[0] <= 1_024, "prompt_tokens bounded by the body: \(report)")
                #expect(usage[2] == usage[0] + usage[1], "\(report)")
            }
            var buffer: [UInt8] = []
            fleet.gateway.prometheus.emit(into: &buffer)
            #expect(String(decoding: buffer, as: UTF8.self).contains("fleet_usage_clamped_total{route=\"car\"} 2"))
        }
    }
}
