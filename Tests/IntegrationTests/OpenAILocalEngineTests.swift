import AsyncHTTPClient
import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The `openai-local` engine against runtimes that misbehave, and against a fast synthetic one
/// (`CentralServer`), so its failure paths and cancellation are tested without a model.
@Suite("openai-local engine", .timeLimit(.minutes(2)))
struct OpenAILocalEngineTests {
    @Test("A runtime that does not answer, or lacks a mapped model, stops the agent with a clear error")
    func connectErrors() async throws {
        await #expect {
            var configuration = OpenAILocalEngine.Configuration(baseURL: "http://127.0.0.1:1/v1")
            configuration.discoveryTimeout = .milliseconds(500)
            _ = try await OpenAILocalEngine.connect(configuration, client: .shared)
        } throws: { error in
            let error = error as? EngineError
            return error?.code == "upstream_unavailable"
                && error?.message.contains("http://127.0.0.1:1/v1/models") == true
        }
        let runtime = try await CentralServer.start()
        defer { runtime.channel.close(promise: nil) }
        await #expect {
            _ = try await OpenAILocalEngine.connect(
                .init(baseURL: runtime.baseURL, models: ["chat": "no-such-model"]), client: .shared)
        } throws: { error in
            let error = error as? EngineError
            return error?.code == "model_not_found" && error?.message.contains("no-such-model") == true
        }
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, models: ["chat": "fleet-8b"]), client: .shared)
        #expect(engine.models.map(\.id) == ["chat"])
        #expect(engine.continuation == .prefix)  // a template set explicitly is kept
        // `auto` (the agent's default): SmolLM2's template only for SmolLM models, else no continuation.
        var auto = OpenAILocalEngine.Configuration(baseURL: runtime.baseURL, models: ["chat": "fleet-8b"])
        auto.chatTemplateOnlyForSmolLM = true
        #expect(try await OpenAILocalEngine.connect(auto, client: .shared).continuation == .none)
    }

    @Test("Tokens stream through gateway and agent from the runtime, and a client reset stops the runtime's job")
    func streamsAndCancels() async throws {
        let runtime = try await CentralServer.start(hardware: .hw4, slowdown: 1)
        defer { runtime.channel.close(promise: nil) }
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, models: ["chat": "fleet-8b"], slots: 2), client: .shared)
        try await withFleet { fleet in
            let pseudonym = try await fleet.startCar("bridge-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let done = try await client.post(
                "/v1/chat/completions", json: chatBody(model: "chat", stream: true, maxTokens: 5)
            ).collect()
            #expect(done.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == pseudonym)
            let tokens = try chunks(try ssePayloads(done.body)).flatMap(\.choices).compactMap { $0.delta?.content }
            #expect(tokens.filter { !$0.isEmpty }.count == 5)
            #expect(done.body.hasSuffix("data: [DONE]\n\n"))

            let stream = try await client.post(
                "/v1/chat/completions", json: chatBody(model: "chat", stream: true, maxTokens: 5_000))
            try await waitUntil("the runtime generates") { runtime.engine.tokensGenerated >= 10 }
            stream.reset()
            try await waitUntil("the runtime's job is cancelled") {
                runtime.engine.jobsCancelled == 1 && runtime.engine.activeJobs == 0
            }
            #expect(engine.jobsCancelled == 1 && engine.activeJobs == 0)
        }
    }

    @Test("A runtime's rejection of the request (400) reaches the app as that 400, once, and never benches the car")
    func runtimeRejectionPassesThrough() async throws {
        let rejecting = RejectingRuntime()
        let (runtime, engine) = try await ServedRuntime.start(rejecting, models: ["tight": "internal-tight-70b"])
        defer { runtime.close(promise: nil) }
        try await withFleet { fleet in
            _ = try await fleet.startCar("tight-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for streaming in [true, false, true] {
                let done = try await client.post(
                    "/v1/chat/completions", json: chatBody(model: "tight", stream: streaming, maxTokens: 5)
                ).collect()
                // Not 502 upstream_error, and not 503 for the next request: the car was not benched.
                #expect(done.response?.status.code == 400, "\(done.body)")
                let error = try JSON.decode(APIErrorBody.self, from: Array(done.body.utf8))
                #expect(error.error.code == "context_length_exceeded" && error.error.param == "messages")
                #expect(error.error.message.contains("maximum context length is 2048"))
                // The runtime's own model name, which the car's model map keeps from apps, is not shown.
                #expect(error.error.message.contains("(tight)") && !done.body.contains("internal-tight-70b"))
                #expect(error.fleetStatus == nil && !done.body.contains("fleet_status"))
            }
            #expect(rejecting.completions.load(ordering: .relaxed) == 3, "a rejection is not tried elsewhere")
            let metrics = try await DashboardTests.admin(fleet, "/metrics").1
            #expect(metrics.contains(#"fleet_attempt_failures_total{kind="runtime_rejected"} 3"#))
        }
    }

    @Test(
        "An empty event stream is asked again without streaming: its refusal reaches the app as a 400; a 200 again is the runtime's failure (helper-100, helper-102)"
    )
    func emptyStreamAskedWhy() async throws {
        for refuses in [true, false] {
            let empty = BodyRecordingResponder(EmptyStreamRuntime(refusesUnstreamed: refuses))
            let (runtime, engine) = try await ServedRuntime.start(empty, models: ["tight": "internal-tight-70b"])
            defer { runtime.close(promise: nil) }
            try await withFleet { fleet in
                _ = try await fleet.startCar("empty-car", engine: engine)
                let client = try await RecordingClient.connect(port: fleet.clientPort)
                defer { client.close() }
                let done = try await client.post(
                    "/v1/chat/completions", json: chatBody(model: "tight", stream: true, maxTokens: 5)
                ).collect()
                let asked = empty.requests.filter { $0.path.hasSuffix("/chat/completions") }.map {
                    String(buffer: $0.body)
                }
                // The stream first, then the same request with `stream: false` (the retry, too, sends that).
                #expect(asked.first?.contains(#""stream":true"#) == true, "\(asked)")
                #expect(asked.dropFirst().first?.contains(#""stream":false"#) == true, "\(asked)")
                if refuses {
                    #expect(done.response?.status.code == 400, "\(done.body)")
                    #expect(done.body.contains("context_length_exceeded"), "\(done.body)")
                } else {
                    // Not the app's fault: a 502 (the car tried, and no other car serves the model).
                    #expect(done.response?.status.code != 400 && done.response?.status.code != 200, "\(done.body)")
                    #expect(asked.filter { $0.contains(#""stream":false"#) }.count >= 1)
                }
            }
        }
    }

    @Test("A car's rejection is tried once elsewhere: another car that serves answers; two rejections go to the app")
    func runtimeRejectionTriedOnce() async throws {
        // The second says 421, which would send an HTTP/2 client to another connection: the app gets 400.
        let (first, second) = (RejectingRuntime(), RejectingRuntime(status: .misdirectedRequest))
        let (runtimeA, engineA) = try await ServedRuntime.start(first, models: ["tight": "internal-tight-70b"])
        let (runtimeB, engineB) = try await ServedRuntime.start(second, models: ["tight": "internal-tight-70b"])
        let serving = try await CentralServer.start()
        defer {
            runtimeA.close(promise: nil)
            runtimeB.close(promise: nil)
            serving.channel.close(promise: nil)
        }
        // Two rejecting cars: each request asks one, then the other, then the app hears the 400 —
        // not a third attempt (dispatch.maxAttempts is 3), and neither car benched.
        try await withFleet { fleet in
            _ = try await fleet.startCar("tight-a", engine: engineA)
            _ = try await fleet.startCar("tight-b", engine: engineB)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for _ in 0..<2 {
                let done = try await client.post(
                    "/v1/chat/completions", json: chatBody(model: "tight", stream: true, maxTokens: 5)
                ).collect()
                #expect(done.response?.status.code == 400, "\(done.body)")
                #expect(done.body.contains("context_length_exceeded"))
            }
            let asked = first.completions.load(ordering: .relaxed) + second.completions.load(ordering: .relaxed)
            #expect(asked == 4, "two runtimes asked per request")
        }
        // A rejecting car and one that serves: the app gets its answer whichever is asked first; while
        // the one that serves is full, a 503 to retry, not the rejecting car's 400 (helper-63).
        let serves = try await OpenAILocalEngine.connect(
            .init(baseURL: serving.baseURL, models: ["tight": "fleet-8b"], slots: 1), client: .shared)
        try await withFleet { fleet in
            _ = try await fleet.startCar("tight-a", engine: engineA)
            _ = try await fleet.startCar("roomy", engine: serves)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for _ in 0..<4 {
                let done = try await client.post(
                    "/v1/chat/completions", json: chatBody(model: "tight", stream: true, maxTokens: 3)
                ).collect()
                #expect(done.response?.status == .ok, "\(done.body)")
                #expect(done.body.hasSuffix("data: [DONE]\n\n"))
            }
            let long = try await client.post(
                "/v1/chat/completions", json: chatBody(model: "tight", stream: true, maxTokens: 5_000))
            try await waitUntil("the serving car is full") { serving.engine.activeJobs == 1 }
            let busy = try await client.post(
                "/v1/chat/completions", json: chatBody(model: "tight", stream: true, maxTokens: 3)
            ).collect()
            #expect(busy.response?.status.code == 503, "\(busy.body)")
            #expect(busy.body.contains("server_overloaded") && busy.response?.headerFields[.retryAfter] != nil)
            long.reset()
        }
    }

    /// helper-123: runtimes' own defaults differ (llama.cpp's server generates until the context ends).
    @Test("A legacy completion without max_tokens asks the runtime for OpenAI's 16; one with it, for that")
    func legacyDefaultLength() async throws {
        let runtime = try await CentralServer.start()
        defer { runtime.channel.close(promise: nil) }
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, models: ["chat": "fleet-8b"], slots: 2), client: .shared)
        try await withFleet { fleet in
            _ = try await fleet.startCar("legacy-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for body in [#"{"model":"chat","prompt":"Once"}"#, #"{"model":"chat","prompt":"Once","max_tokens":3}"#] {
                let done = try await client.post("/v1/completions", json: body).collect()
                #expect(done.response?.status == .ok, "\(done.body)")
            }
            let sent = runtime.recorder.requests.filter { $0.path.hasSuffix("/completions") }.map {
                String(buffer: $0.body)
            }
            #expect(sent.count == 2)
            #expect(sent.first?.contains(#""max_tokens":16"#) == true, "\(sent)")
            #expect(sent.last?.contains(#""max_tokens":3"#) == true && sent.last?.contains("16") == false, "\(sent)")
        }
    }

    @Test("A car never receives what names the app's end user: user, safety_identifier, prompt_cache_key, metadata")
    func carGetsNoUserIdentifiers() async throws {
        let runtime = try await CentralServer.start()
        defer { runtime.channel.close(promise: nil) }
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, models: ["chat": "fleet-8b"], slots: 2), client: .shared)
        try await withFleet { fleet in
            _ = try await fleet.startCar("private-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let chat =
                #"{"model":"chat","stream":true,"max_tokens":3,"user":"alice@example.com","safety_identifier":"sid-alice","prompt_cache_key":"pck-alice","metadata":{"customer":"acme"},"messages":[{"role":"user","content":"Hello PRIVATE"}]}"#
            let responses =
                #"{"model":"chat","max_output_tokens":3,"user":"alice@example.com","metadata":{"customer":"acme"},"input":"Hello PRIVATE"}"#
            for (path, body) in [("/v1/chat/completions", chat), ("/v1/responses", responses)] {
                let done = try await client.post(path, json: body).collect()
                #expect(done.response?.status == .ok, "\(path): \(done.body)")
                #expect(done.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
            }
            let received = runtime.recorder.requests.filter { $0.path.hasSuffix("/chat/completions") }
            #expect(received.count == 2)
            for request in received {
                let text = String(buffer: request.body)
                #expect(text.contains("Hello PRIVATE"))
                for secret in ["alice", "sid-alice", "pck-alice", "acme", "\"user\":", "metadata"] {
                    #expect(!text.contains(secret), "the car's runtime received \(secret): \(text)")
                }
            }
        }
    }

    @Test(
        "A runtime's tokens with escapes (quotes, newlines, \\u, surrogate pairs, a lone surrogate) reach the client as their text"
    )
    func escapedTokens() async throws {
        let (runtime, engine) = try await ServedRuntime.start(EscapingRuntime(), models: ["chat": "escapes"])
        defer { runtime.close(promise: nil) }
        try await withFleet { fleet in
            _ = try await fleet.startCar("escaping-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let done = try await client.post(
                "/v1/chat/completions", json: chatBody(model: "chat", stream: true, maxTokens: 50)
            ).collect()
            let tokens = try chunks(try ssePayloads(done.body)).flatMap(\.choices).compactMap { $0.delta?.content }
            #expect(tokens.filter { !$0.isEmpty } == EscapingRuntime.texts)
            #expect(done.body.hasSuffix("data: [DONE]\n\n"))
        }
        // Straight to a sink that takes text (the default `emit(tokenJSON:)` decodes).
        let straight = try await JobResult.run(on: engine)
        #expect(straight.finished != nil && straight.tokens == EscapingRuntime.texts)
    }

    /// Cars did not relay tool calls (the agent's sink took text only): a runtime's function call was a
    /// 502, or central's work. The pieces now reach the app as the runtime streamed them, and a
    /// `stream: false` answer has them joined in `message.tool_calls` — checked by the official SDK,
    /// which validates every chunk and object and joins a stream's pieces itself.
    @Test("A runtime's tool calls reach the app through the car, streamed and whole, as the openai SDK reads them")
    func toolCall() async throws {
        let (runtime, engine) = try await ServedRuntime.start(ToolCallRuntime(), models: ["chat": "tools"])
        defer { runtime.close(promise: nil) }
        let result = try await JobResult.run(on: engine)
        #expect(result.failure == nil && result.finished == "tool_calls" && result.tokens == ["Let me look."])
        #expect(result.toolCalls.map(\.index) == [0, 0, 1] && result.toolCalls.first?.id == "call_1")
        try await withFleet { fleet in
            _ = try await fleet.startCar("tool-car", engine: engine)
            let script = """
                import json, sys, openai
                client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
                strict = lambda obj: type(obj).model_validate(obj.to_dict())
                tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}},
                         {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}]
                ask = dict(model="chat", messages=[{"role": "user", "content": "hi"}], tools=tools)
                calls = lambda message: [[c.id, c.type, c.function.name, c.function.arguments]
                                         for c in message.tool_calls or []]
                whole = strict(client.chat.completions.create(**ask))
                chunks = [strict(c) for c in client.chat.completions.create(stream=True, **ask)]
                with client.chat.completions.stream(**ask) as stream:
                    joined = stream.get_final_completion()
                print(json.dumps({
                    "whole": calls(whole.choices[0].message), "text": whole.choices[0].message.content,
                    "finish": whole.choices[0].finish_reason,
                    "pieces": sum(len(c.choices[0].delta.tool_calls or []) for c in chunks if c.choices),
                    "streamed": calls(joined.choices[0].message), "streamedText": joined.choices[0].message.content,
                    "streamedFinish": joined.choices[0].finish_reason}))
                """
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            let expected = [
                ["call_1", "function", "weather", #"{"city":"Paris"}"#], ["call_2", "function", "time", "{}"],
            ]
            #expect(report["whole"] as? [[String]] == expected, "\(report)")
            #expect(report["streamed"] as? [[String]] == expected, "\(report)")
            #expect(report["pieces"] as? Int == 3, "\(report)")
            #expect(report["text"] as? String == "Let me look." && report["streamedText"] as? String == "Let me look.")
            #expect(report["finish"] as? String == "tool_calls" && report["streamedFinish"] as? String == "tool_calls")
            #expect(try await fleet.attemptFailures(kind: "runtime_tool_call") == 0)
        }
    }

    /// A legacy `function_call` (deprecated; no runtime the fleet runs writes it) is still not relayed: an
    /// error, never an empty answer, and not retried by the SDKs (asked again, the runtime calls again).
    @Test("A runtime's legacy function_call is an error on the car path, never an empty answer")
    func legacyFunctionCall() async throws {
        let (runtime, engine) = try await ServedRuntime.start(
            ToolCallRuntime(legacy: true), models: ["chat": "tools"])
        defer { runtime.close(promise: nil) }
        let result = try await JobResult.run(on: engine)
        #expect(result.failure == "runtime_tool_call" && result.tokens == ["Let me look."])
        try await withFleet { fleet in
            _ = try await fleet.startCar("tool-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for stream in [true, false] {
                let done = try await client.post(
                    "/v1/chat/completions", json: chatBody(model: "chat", stream: stream, maxTokens: 50)
                ).collect()
                #expect(done.response?.status != .ok || done.body.contains("\"error\""), "\(done.body)")
                #expect(!done.body.contains("\"finish_reason\":\"function_call\""), "\(done.body)")
                #expect(!done.body.hasSuffix("data: [DONE]\n\n"), "\(done.body)")
                if let response = done.response, response.status != .ok {
                    #expect(response.headerFields[HTTPField.Name("x-should-retry")!] == "false", "stream: \(stream)")
                }
            }
        }
    }

    @Test("A runtime's tool call before any text: the request is served by central capacity in the zone instead")
    func toolCallGoesCentral() async throws {
        let (runtime, engine) = try await ServedRuntime.start(
            ToolCallRuntime(textFirst: false, legacy: true), models: ["fleet-8b": "tools"])
        defer { runtime.close(promise: nil) }
        let central = try await CentralServer.start()
        defer { central.channel.close(promise: nil) }
        // A fleet each: after its failure the car's health would send the next request to central anyway.
        for stream in [true, false] {
            try await withFleet(configure: {
                $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)]
            }) {
                fleet in
                try await waitUntil("central models discovered") {
                    fleet.gateway.core.central.models().contains("fleet-8b")
                }
                // Two cars: the second is not tried (its runtime would answer the same).
                _ = try await fleet.startCar("tool-car", engine: engine)
                _ = try await fleet.startCar("tool-car-2", engine: engine)
                let client = try await RecordingClient.connect(port: fleet.clientPort)
                defer { client.close() }
                let done = try await client.post("/v1/chat/completions", json: chatBody(stream: stream, maxTokens: 5))
                    .collect()
                #expect(done.response?.status == .ok, "\(done.body)")
                #expect(done.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "central", "the car answered")
                #expect(!done.body.contains("error"), "\(done.body)")
                #expect(try await fleet.attemptFailures(kind: "runtime_tool_call") == 1, "stream: \(stream)")
            }
        }
    }

    /// Review of 875bbf9: a request only central can serve (the car's runtime called a tool), with the
    /// zone's central busy, got 502 "no central endpoint could serve" instead of 503 with Retry-After.
    @Test("A car's tool call with central busy: 503 server_overloaded with Retry-After, not 502")
    func toolCallCentralBusy() async throws {
        let (runtime, engine) = try await ServedRuntime.start(
            ToolCallRuntime(textFirst: false, legacy: true), models: ["fleet-8b": "tools"])
        defer { runtime.close(promise: nil) }
        let script = CannedCentral.Script()
        script.answers.withLock { $0 = [(429, #"{"error":{"message":"slow down"}}"#)] }
        script.retryAfters.withLock { $0 = ["9"] }
        let central = try await CannedCentral.start(script)
        defer { central.channel.close(promise: nil) }
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)]
        }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            _ = try await fleet.startCar("tool-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Central answers busy; then, while it waits out its 9 s, it is not asked at all.
            for attempt in 0..<2 {
                let done = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 5))
                    .collect()
                #expect(done.response?.status.code == 503, "\(attempt): \(done.body)")
                #expect(done.body.contains("server_overloaded"), "\(attempt): \(done.body)")
                let seconds = done.response?.headerFields[.retryAfter].flatMap { Int($0) } ?? 0
                #expect((8...9).contains(seconds), "\(attempt): \(seconds)")
            }
            #expect(script.served.withLock { $0 } == 1)
        }
    }

    /// Review of session 19: a `stream: false` client whose car wrote text and then a tool call got a
    /// 502, although it had heard nothing and central could answer from scratch.
    @Test("A runtime's tool call after text: a stream: false answer starts again on central, the client sees only that")
    func toolCallAfterTextRestarts() async throws {
        let (runtime, engine) = try await ServedRuntime.start(
            ToolCallRuntime(textFirst: true, legacy: true), models: ["fleet-8b": "tools"])
        defer { runtime.close(promise: nil) }
        let central = try await CentralServer.start()
        defer { central.channel.close(promise: nil) }
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)]
        }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            _ = try await fleet.startCar("tool-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let done = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 5))
                .collect()
            #expect(done.response?.status == .ok, "\(done.body)")
            #expect(done.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "central")
            let answer = try JSONDecoder().decode(CompletionResponse.self, from: Data(done.body.utf8))
            // Central's answer alone: none of the car's text ("Let me look.") before it.
            let text = answer.choices.first?.message?.content ?? ""
            #expect(!text.isEmpty && !text.contains("Let me look."), "\(done.body)")
            #expect(answer.usage.completionTokens == 5)
            #expect(try await fleet.attemptFailures(kind: "runtime_tool_call") == 1)
            #expect(try await fleet.counter("fleet_migrations_total", label: "reason", value: "restart") == 1)
            // Streamed, the client heard the text: it cannot start again, it gets the error event.
            let streamed = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5))
                .collect()
            #expect(streamed.body.contains("\"error\""), "\(streamed.body)")
        }
    }

    /// Found by an attack with a hostile runtime (session 19): each of these reached the app as a complete
    /// answer (empty, cut short, two choices merged into one, text after the end) or crashed the agent.
    @Test(
        "A runtime's lying bodies: cut short, not SSE, empty, two choices fail the job; text after the end is dropped; huge usage does not trap"
    )
    func lyingRuntime() async throws {
        func event(_ delta: String, finish: String? = nil, index: Int = 0) -> String {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return #"data: {"choices":[{"index":\#(index),"delta":{\#(delta)},"finish_reason":\#(reason)}]}"# + "\n\n"
        }
        let text = event(#""role":"assistant","content":"one""#) + event(#""content":" two""#)
        let finish = event("", finish: "stop")
        let cases: [(name: String, body: String, failure: String?, tokens: [String])] = [
            ("cut short", text, "upstream_bad_stream", ["one", " two"]),
            ("a JSON object", #"{"choices":[{"message":{"content":"hi"}}]}"#, "upstream_bad_stream", []),
            ("empty", "", "upstream_bad_stream", []),
            ("[DONE] only", "data: [DONE]\n\n", "upstream_bad_stream", []),
            (
                "an error event after text",
                text + #"data: {"error":{"code":500,"message":"context full","type":"server_error"}}"# + "\n\n",
                "upstream_error", ["one", " two"]
            ),
            ("an empty object", text + "data: {}\n\n" + finish, "upstream_bad_stream", ["one", " two"]),
            (
                "error: null beside the choices",
                #"data: {"error":null,"choices":[{"index":0,"delta":{"content":"one"},"finish_reason":null}]}"# + "\n\n"
                    + finish, nil, ["one"]
            ),
            (
                "two choices", text + event(#""content":"other""#, index: 1) + finish, "runtime_multiple_choices",
                ["one", " two"]
            ),
            (
                "after the finish",
                text + finish + event(#""content":" late""#) + "data: [DONE]\n\n" + event(#""content":" later""#), nil,
                ["one", " two"]
            ),
            ("spaced [DONE]", text + "data:  [DONE]  \n\n", nil, ["one", " two"]),
            // vLLM: an empty tool_calls array with every content delta is no call.
            ("empty tool_calls", event(#""content":"one","tool_calls":[]"#) + finish, nil, ["one"]),
            (
                "finish tool_calls, no call", text + event("", finish: "tool_calls"), "runtime_tool_call",
                ["one", " two"]
            ),
            (
                "usage at Int.max",
                text + finish
                    + #"data: {"choices":[],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}}"#
                    + "\n\ndata: [DONE]\n\n", nil, ["one", " two"]
            ),
        ]
        // A finished answer whose body does not end cleanly: `[DONE]` or the finish ends the job.
        let endings: [(String, String, CannedRuntime.Ending)] = [
            ("[DONE], body left open", text + finish + "data: [DONE]\n\n", .open),
            ("[DONE], connection closed", text + finish + "data: [DONE]\n\n", .close),
            ("a finish, connection closed", text + finish, .close),
        ]
        for (name, body, ending) in endings {
            let (runtime, engine) = try await ServedRuntime.start(
                CannedRuntime(body: body, ending: ending), models: ["chat": "canned"])
            defer { runtime.close(promise: nil) }
            let result = try await JobResult.run(on: engine)
            #expect(result.failure == nil && result.finished == "stop", "\(name)")
            #expect(result.tokens == ["one", " two"], "\(name)")
        }
        for (name, body, failure, tokens) in cases {
            let (runtime, engine) = try await ServedRuntime.start(CannedRuntime(body: body), models: ["chat": "canned"])
            defer { runtime.close(promise: nil) }
            let result = try await JobResult.run(on: engine)
            #expect(result.failure == failure, "\(name)")
            #expect(result.tokens == tokens, "\(name)")
        }
    }

    /// A reasoning model on a car (llama.cpp, vLLM: `reasoning_content` before the text): the agent
    /// dropped the thinking, so the app got none of it and nothing at all while the model thought.
    @Test("A runtime's reasoning_content reaches the app, streamed and in a stream: false answer, before the text")
    func reasoning() async throws {
        func event(_ delta: String, finish: String? = nil) -> String {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return #"data: {"choices":[{"index":0,"delta":{\#(delta)},"finish_reason":\#(reason)}]}"# + "\n\n"
        }
        let body =
            event(#""role":"assistant","reasoning_content":"Think""#) + event(#""reasoning_content":"ing \"hard\"""#)
            + event(#""reasoning":".""#) + event(#""reasoning_content":null,"content":"Hi""#)
            + event(#""content":" there""#) + event("", finish: "stop") + "data: [DONE]\n\n"
        let (runtime, engine) = try await ServedRuntime.start(CannedRuntime(body: body), models: ["chat": "canned"])
        defer { runtime.close(promise: nil) }
        let result = try await JobResult.run(on: engine)
        #expect(result.finished == "stop" && result.failure == nil)
        #expect(result.reasoning == ["Think", "ing \"hard\"", "."] && result.tokens == ["Hi", " there"])
        try await withFleet { fleet in
            _ = try await fleet.startCar("thinking-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streamed = try await client.post("/v1/chat/completions", json: chatBody(model: "chat", stream: true))
                .collect()
            #expect(streamed.response?.status == .ok, "\(streamed.body)")
            let deltas = try ssePayloads(streamed.body).filter { $0 != SSE.done }.compactMap {
                payload -> [String: Any]? in
                let object = try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
                return ((object?["choices"] as? [[String: Any]])?.first?["delta"]) as? [String: Any]
            }
            let thinking = deltas.compactMap { $0["reasoning_content"] as? String }
            let text = deltas.compactMap { $0["content"] as? String }.filter { !$0.isEmpty }
            #expect(thinking == ["Think", "ing \"hard\"", "."], "\(streamed.body)")
            #expect(text == ["Hi", " there"], "\(streamed.body)")
            let whole = try await client.post("/v1/chat/completions", json: chatBody(model: "chat", stream: false))
                .collect()
            let answer = try JSONSerialization.jsonObject(with: Data(whole.body.utf8)) as? [String: Any]
            let message = ((answer?["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any]
            #expect(message?["reasoning_content"] as? String == "Thinking \"hard\".", "\(whole.body)")
            #expect(message?["content"] as? String == "Hi there", "\(whole.body)")
            let usage = answer?["usage"] as? [String: Any]
            #expect(usage?["completion_tokens"] as? Int == 5, "thinking counts as output: \(whole.body)")

            // The Responses API: a reasoning item before the message, each event and object validated
            // strictly by the official SDK's own models.
            let script = """
                import json, sys, openai
                client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
                strict = lambda obj: type(obj).model_validate(obj.to_dict())
                whole = strict(client.responses.create(model="chat", input="hi"))
                events = [strict(e) for e in client.responses.create(model="chat", input="hi", stream=True)]
                print(json.dumps({
                    "items": [o.type for o in whole.output], "thinking": whole.output[0].content[0].text,
                    "text": whole.output_text, "events": [e.type for e in events],
                    "deltas": "".join(e.delta for e in events if e.type == "response.reasoning_text.delta"),
                    "final": [o.type for o in events[-1].response.output]}))
                """
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            #expect(report["items"] as? [String] == ["reasoning", "message"], "\(report)")
            #expect(report["thinking"] as? String == "Thinking \"hard\"." && report["text"] as? String == "Hi there")
            #expect(report["deltas"] as? String == "Thinking \"hard\".")
            #expect(report["final"] as? [String] == ["reasoning", "message"])
            #expect((report["events"] as? [String])?.filter { $0 == "response.output_item.done" }.count == 2)
        }
    }

    /// helper-64: the agent relayed text and thinking only, so a model that declined reached the app as
    /// an empty answer that finished `stop` — on chat through a car, and on the Responses API always.
    @Test("A runtime's refusal reaches the app as OpenAI's refusal: chat streamed and whole, and the Responses API")
    func refusal() async throws {
        func event(_ delta: String, finish: String? = nil) -> String {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return #"data: {"choices":[{"index":0,"delta":{\#(delta)},"finish_reason":\#(reason)}]}"# + "\n\n"
        }
        let body =
            event(#""role":"assistant","content":"","refusal":"I can""#) + event(#""refusal":"'t help with \"that\".""#)
            + event(#""refusal":null"#, finish: "stop") + "data: [DONE]\n\n"
        let (runtime, engine) = try await ServedRuntime.start(CannedRuntime(body: body), models: ["chat": "canned"])
        defer { runtime.close(promise: nil) }
        let result = try await JobResult.run(on: engine)
        #expect(result.finished == "stop" && result.failure == nil && result.tokens.isEmpty)
        #expect(result.refusal == ["I can", "'t help with \"that\"."])
        try await withFleet { fleet in
            _ = try await fleet.startCar("refusing-car", engine: engine)
            // Every object and event validated strictly by the official SDK's own models.
            let script = """
                import json, sys, openai
                client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
                strict = lambda obj: type(obj).model_validate(obj.to_dict())
                messages = [{"role": "user", "content": "hi"}]
                whole = strict(client.chat.completions.create(model="chat", messages=messages))
                chunks = [strict(c) for c in client.chat.completions.create(model="chat", messages=messages, stream=True)]
                answer = strict(client.responses.create(model="chat", input="hi"))
                events = [strict(e) for e in client.responses.create(model="chat", input="hi", stream=True)]
                with client.responses.stream(model="chat", input="hi") as stream:
                    final = stream.get_final_response()
                print(json.dumps({
                    "chat": [whole.choices[0].message.refusal, whole.choices[0].message.content or ""],
                    "streamed": "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices),
                    "parts": [p.type for p in answer.output[0].content], "refusal": answer.output[0].content[0].refusal,
                    "events": [e.type for e in events],
                    "deltas": "".join(e.delta for e in events if e.type == "response.refusal.delta"),
                    "done": [e.refusal for e in events if e.type == "response.refusal.done"],
                    "final": [[p.type, getattr(p, "refusal", None)] for p in final.output[0].content]}))
                """
            let report = try await runSDK(script, baseURL: fleet.baseURL)
            let refusal = "I can't help with \"that\"."
            #expect(report["chat"] as? [String] == [refusal, ""], "\(report)")
            #expect(report["streamed"] as? String == refusal, "\(report)")
            #expect(report["parts"] as? [String] == ["refusal"] && report["refusal"] as? String == refusal, "\(report)")
            #expect(report["deltas"] as? String == refusal && report["done"] as? [String] == [refusal], "\(report)")
            #expect(report["final"] as? [[String]] == [["refusal", refusal]], "\(report)")
            let events = report["events"] as? [String] ?? []
            #expect(!events.contains("response.output_text.delta") && events.last == "response.completed", "\(events)")
        }
    }

    @Test("A busy runtime (429, 503) is a busy car: the app hears 503 server_overloaded with Retry-After, not 502")
    func busyRuntime() async throws {
        for status in [HTTPResponse.Status.tooManyRequests, .serviceUnavailable] {
            let (runtime, engine) = try await ServedRuntime.start(
                CannedRuntime(body: #"{"error":{"message":"busy","type":"server_error"}}"#, status: status),
                models: ["chat": "canned"])
            defer { runtime.close(promise: nil) }
            try await withFleet { fleet in
                _ = try await fleet.startCar("busy-car", engine: engine)
                let client = try await RecordingClient.connect(port: fleet.clientPort)
                defer { client.close() }
                for stream in [true, false] {
                    let done = try await client.post(
                        "/v1/chat/completions", json: chatBody(model: "chat", stream: stream)
                    )
                    .collect()
                    #expect(done.response?.status.code == 503, "\(status) \(stream): \(done.body)")
                    #expect(done.response?.headerFields[.retryAfter] != nil)
                    #expect(done.body.contains("server_overloaded"), "\(done.body)")
                }
            }
        }
    }

    /// helper-71: llama-cpp-python answered a response_format it does not take with a 500, and the app
    /// read "after 1 attempts (upstream_error)" with no word of why.
    @Test("A runtime's 500 reaches the app as a 502 that says what the runtime said")
    func runtimeFailureSaysWhy() async throws {
        let (runtime, engine) = try await ServedRuntime.start(
            CannedRuntime(
                body: #"{"error":{"message":"json_schema is not supported","type":"server_error"}}"#,
                status: .internalServerError),
            models: ["chat": "canned"])
        defer { runtime.close(promise: nil) }
        let log = CapturedLog()
        try await withFleet(log: log) { fleet in
            _ = try await fleet.startCar("failing-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let done = try await client.post("/v1/chat/completions", json: chatBody(model: "chat", stream: false))
                .collect()
            #expect(done.response?.status.code == 502, "\(done.body)")
            #expect(
                done.body.contains("the inference runtime answered 500: json_schema is not supported"), "\(done.body)")
            // The car's own log says its runtime failed (helper-130), by code: never the runtime's words.
            let failed = log.matching("Job failed: the runtime did not serve it")
            #expect(failed.first?.metadata["error.type"] == "upstream_status_500", "\(failed)")
            #expect(!log.lines.withLock { "\($0)" }.contains("json_schema is not supported"))
        }
    }

    @Test(
        "A stream: false request whose car fails after its first token gets a JSON error, not an SSE event without a head"
    )
    func wholeAnswerFailsMidStream() async throws {
        let text = #"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"one"},"finish_reason":null}]}"#
        let error = #"data: {"error":{"message":"runtime broke","type":"server_error"}}"#
        let (runtime, engine) = try await ServedRuntime.start(
            CannedRuntime(body: text + "\n\n" + error + "\n\n"), models: ["chat": "canned"])
        defer { runtime.close(promise: nil) }
        try await withFleet { fleet in
            _ = try await fleet.startCar("breaking-car", engine: engine)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let done = try await client.post("/v1/chat/completions", json: chatBody(model: "chat", stream: false))
                .collect()
            #expect(done.response?.status.code == 502, "\(done.body)")
            let object = try JSONSerialization.jsonObject(with: Data(done.body.utf8)) as? [String: Any]
            #expect((object?["error"] as? [String: Any])?["type"] as? String == "server_error", "\(done.body)")
        }
    }

    @Test("A runtime that answers its headers and then stalls fails the job after the first-token timeout")
    func stalledRuntime() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let stalling = try await HTTPServer.bind(host: "127.0.0.1", port: 0, group: group, responder: StallingRuntime())
        defer { stalling.close(promise: nil) }
        let url = "http://127.0.0.1:\(stalling.localAddress!.port!)/v1"
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: url, firstTokenTimeout: .milliseconds(300)), client: .shared)
        let loop = group.any()
        let sink = try await loop.submit { RecordingSink() }.get()
        let body = try JSON.decode(CompletionRequest.self, from: Array(chatBody(model: "stall", stream: true).utf8))
        let job = InferenceJob(
            model: "stall", prompt: body.promptText, maxTokens: 8, stop: [], seed: 1, body: body)
        let started = ContinuousClock.now
        _ = try await loop.submit { engine.start(job, on: loop, sink: sink) }.get()
        try await waitUntil("the job fails") { try await loop.submit { sink.failure != nil }.get() }
        let failure = try await loop.submit { sink.failure }.get()
        #expect(failure?.code == "upstream_timeout")
        #expect(failure?.message.contains("no token") == true)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(engine.activeJobs == 0)
    }

    @Test(
        "A runtime silent mid-stream fails the job after the read timeout, but not while the sink is full (the agent's runtime client)"
    )
    func silentRuntime() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let silent = try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: group, responder: StallingRuntime(sendsOneToken: true))
        defer { silent.close(promise: nil) }
        var configuration = OpenAILocalEngine.Configuration(
            baseURL: "http://127.0.0.1:\(silent.localAddress!.port!)/v1")
        configuration.readTimeout = .milliseconds(300)
        let engine = try await OpenAILocalEngine.connect(configuration, client: OpenAILocalEngine.runtimeClient)
        let loop = group.any()
        let sink = try await loop.submit {
            let sink = RecordingSink()
            sink.paused = true
            return sink
        }.get()
        let body = try JSON.decode(CompletionRequest.self, from: Array(chatBody(model: "stall", stream: true).utf8))
        let job = InferenceJob(model: "stall", prompt: body.promptText, maxTokens: 8, stop: [], seed: 1, body: body)
        try await loop.submit { sink.handle = engine.start(job, on: loop, sink: sink) }.get()
        try await waitUntil("the first token") { try await loop.submit { sink.tokens == ["one"] }.get() }
        // The sink is full: the job does not read, so the runtime's silence is not a stall.
        try await Task.sleep(for: .milliseconds(900))
        #expect(try await loop.submit { sink.failure }.get() == nil)
        try await loop.submit {
            sink.paused = false
            sink.handle?.resume()
        }.get()
        try await waitUntil("the job fails") { try await loop.submit { sink.failure != nil }.get() }
        let (tokens, failure) = try await loop.submit { (sink.tokens, sink.failure) }.get()
        #expect(tokens == ["one"])
        #expect(failure?.code == "upstream_timeout")
        #expect(failure?.message.contains("no data from the inference runtime") == true)
        #expect(engine.activeJobs == 0)
    }
}

/// A runtime served on loopback and an openai-local engine connected to it.
enum ServedRuntime {
    /// Binds `responder` on 127.0.0.1 and connects an engine (2 slots) mapping `models` onto it.
    static func start(
        _ responder: some HTTPServerResponder, models: [String: String]
    ) async throws -> (any Channel, OpenAILocalEngine) {
        let runtime = try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, responder: responder)
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: "http://127.0.0.1:\(runtime.localAddress!.port!)/v1", models: models, slots: 2),
            client: .shared)
        return (runtime, engine)
    }
}

/// Lists one model and rejects every completion as a runtime rejects a prompt over its context.
final class RejectingRuntime: HTTPServerResponder {
    let completions = Atomic<Int>(0)
    /// The status it rejects with.
    let status: HTTPResponse.Status
    init(status: HTTPResponse.Status = .badRequest) { self.status = status }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: "internal-tight-70b", created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        self.completions.add(1, ordering: .relaxed)
        let error = APIErrorBody(
            message: "This model's maximum context length is 2048 tokens (internal-tight-70b).",
            type: "invalid_request_error", code: "context_length_exceeded", param: "messages")
        return FixedResponseDelegate(stream: stream, status: self.status, body: JSON.buffer(error))
    }
}

/// What one chat job run straight on an engine (no gateway) delivered to a sink that takes text.
struct JobResult: Sendable {
    var tokens: [String]
    var reasoning: [String] = []
    var refusal: [String] = []
    var toolCalls: [ToolCall] = []
    var failure: String?
    var finished: String?

    /// Runs a streamed chat job for `chat` on `engine` to its end (the default `emit(tokenJSON:)` decodes).
    static func run(on engine: OpenAILocalEngine) async throws -> JobResult {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let sink = try await loop.submit { RecordingSink() }.get()
        let body = try JSON.decode(CompletionRequest.self, from: Array(chatBody(model: "chat", stream: true).utf8))
        let job = InferenceJob(model: "chat", prompt: body.promptText, maxTokens: 50, stop: [], seed: 1, body: body)
        _ = try await loop.submit { engine.start(job, on: loop, sink: sink) }.get()
        try await waitUntil("the job ends") {
            try await loop.submit { sink.failure != nil || sink.finished != nil }.get()
        }
        return try await loop.submit {
            JobResult(
                tokens: sink.tokens, reasoning: sink.reasoning, refusal: sink.refusal, toolCalls: sink.toolCalls,
                failure: sink.failure?.code, finished: sink.finished)
        }
        .get()
    }
}

/// Lists one model, then answers completions with 200 and SSE headers (and, with `sendsOneToken`,
/// one chunk) and never a byte more.
struct StallingRuntime: HTTPServerResponder {
    var sendsOneToken = false

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: "stall", created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        return StallingDelegate(stream: stream, sendsOneToken: self.sendsOneToken)
    }
}

final class StallingDelegate: HTTPStreamDelegate {
    let stream: any HTTPStream
    let sendsOneToken: Bool
    init(stream: any HTTPStream, sendsOneToken: Bool = false) {
        self.stream = stream
        self.sendsOneToken = sendsOneToken
    }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        self.stream.sendResponse(response, endStream: false)
        if self.sendsOneToken {
            self.stream.sendData(
                ByteBuffer(
                    string: #"data: {"choices":[{"index":0,"delta":{"content":"one"},"finish_reason":null}]}"# + "\n\n"),
                endStream: false)
        }
    }
    func streamDidClose(error: HTTPStreamError?) {}
}

/// Lists one model, then streams tokens whose JSON has every kind of escape, one write a chunk.
struct EscapingRuntime: HTTPServerResponder {
    /// The tokens as the runtime writes them in its JSON, and the texts they are (the empty one is not a token).
    static let tokens = [
        #"" plain""#, #""say \"hi\"""#, #""back\\slash\n""#, #""tab\there\r\n""#, #""caf\u00e9""#,
        #""\ud83d\ude97 car""#, #""lone\ud800""#, #""a\/b\b\f""#, #""raw é""#, #""""#, #""\u0000""#,
    ]
    static let texts = [
        " plain", "say \"hi\"", "back\\slash\n", "tab\there\r\n", "café", "🚗 car", "lone\u{FFFD}", "a/b\u{08}\u{0C}",
        "raw é", "\u{00}",
    ]

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: "escapes", created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        return EscapingDelegate(stream: stream)
    }
}

final class EscapingDelegate: HTTPStreamDelegate {
    let stream: any HTTPStream
    init(stream: any HTTPStream) { self.stream = stream }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        self.stream.sendResponse(response, endStream: false)
        for token in EscapingRuntime.tokens {
            let chunk = #"data: {"choices":[{"index":0,"delta":{"content":"# + token + #"},"finish_reason":null}]}"#
            self.stream.sendData(ByteBuffer(string: chunk + "\n\n"), endStream: false)
        }
        let finish = #"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
        self.stream.sendData(ByteBuffer(string: finish + "\n\ndata: [DONE]\n\n"), endStream: true)
    }
    func streamDidClose(error: HTTPStreamError?) {}
}

/// Lists one model, then answers every completion with some text and a tool call, as llama.cpp's
/// server streams one.
struct ToolCallRuntime: HTTPServerResponder {
    /// Text before the tool call, or the call first.
    var textFirst = true
    /// A legacy `function_call` instead of `tool_calls` (then the job fails: the car path does not relay it).
    var legacy = false
    /// The model it lists.
    var model = "tools"

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: self.model, created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        return FixedResponseDelegate(
            stream: stream, status: .ok, body: ByteBuffer(string: self.eventStream), contentType: "text/event-stream")
    }

    /// The answer to every completion, as an event stream.
    var eventStream: String {
        let calls =
            self.legacy
            ? [
                #"{"choices":[{"index":0,"delta":{"function_call":{"name":"weather","arguments":"{}"}},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{},"finish_reason":"function_call"}]}"#,
            ]
            : [
                // One call's arguments in two pieces, as llama.cpp streams them, then a second call.
                #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"time","arguments":"{}"}}]},"finish_reason":null}]}"#,
                #"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            ]
        let chunks =
            (self.textFirst ? [] : [#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#])
            + [
                #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me look."},"finish_reason":null}]}"#
            ].filter { _ in self.textFirst } + calls
        return chunks.map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n"
    }
}

/// Lists one model, `canned`, and answers every completion with the same body as an event stream.
struct CannedRuntime: HTTPServerResponder {
    /// How the body ends: as HTTP says, not at all, or by closing the connection mid-body.
    enum Ending: Sendable { case clean, open, close }

    var body: String
    var status: HTTPResponse.Status = .ok
    var ending = Ending.clean

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: "canned", created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        guard self.ending == .clean else {
            return OpenEndedDelegate(stream: stream, body: self.body, ending: self.ending)
        }
        return FixedResponseDelegate(
            stream: stream, status: self.status, body: ByteBuffer(string: self.body),
            contentType: self.status == .ok ? "text/event-stream" : "application/json")
    }
}

/// Sends a 200 event stream's body and never ends it: left open, or the connection closed a moment later.
final class OpenEndedDelegate: HTTPStreamDelegate {
    let stream: any HTTPStream
    let body: String
    let ending: CannedRuntime.Ending
    init(stream: any HTTPStream, body: String, ending: CannedRuntime.Ending) {
        self.stream = stream
        self.body = body
        self.ending = ending
    }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        self.stream.sendResponse(response, endStream: false)
        self.stream.sendData(ByteBuffer(string: self.body), endStream: false)
        self.stream.flushNow()
        guard self.ending == .close else { return }
        let stream = NIOLoopBound(self.stream, eventLoop: self.stream.eventLoop)
        self.stream.eventLoop.scheduleTask(in: .milliseconds(50)) { stream.value.reset(.cancel) }
    }
    func streamDidClose(error: HTTPStreamError?) {}
}

/// A sink that records what the engine delivered (used on its event loop only).
final class RecordingSink: TokenSink, @unchecked Sendable {
    var tokens: [String] = []
    /// Thinking, decoded, in order.
    var reasoning: [String] = []
    var failure: EngineError?
    var finished: String?
    /// While set, the engine is told the sink is full.
    var paused = false
    /// The job, when the test needs to resume it.
    var handle: (any InferenceJobHandle)?
    var wantsMore: Bool { !self.paused }
    func emit(token: String) { self.tokens.append(token) }
    func emit(reasoningJSON: UnsafeRawBufferPointer) {
        self.reasoning.append(ChunkScanner.string(reasoningJSON, range: 0..<reasoningJSON.count))
    }
    /// Refusal pieces, decoded, in order.
    var refusal: [String] = []
    func emit(refusalJSON: UnsafeRawBufferPointer) {
        self.refusal.append(ChunkScanner.string(refusalJSON, range: 0..<refusalJSON.count))
    }
    /// Tool-call pieces, in order.
    var toolCalls: [ToolCall] = []
    func emit(toolCalls: [ToolCall]) { self.toolCalls += toolCalls }
    /// The usage details the job finished with.
    var details: UsageDetails?
    /// The counts the job finished with.
    var counts: (prompt: Int, completion: Int)?
    func finish(reason: String, promptTokens: Int, completionTokens: Int, details: UsageDetails?) {
        self.finished = reason
        self.details = details
        self.counts = (promptTokens, completionTokens)
    }
    func fail(_ error: EngineError) { self.failure = error }
}

/// Lists one model; answers a streamed completion with an empty event stream (llama-cpp-python's
/// answer to a prompt over its context) and one without streaming with its 400, or with a 200.
final class EmptyStreamRuntime: HTTPServerResponder {
    let refusesUnstreamed: Bool
    init(refusesUnstreamed: Bool) { self.refusesUnstreamed = refusesUnstreamed }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        if request.path == "/v1/models" {
            let models = ModelList(data: [.init(id: "internal-tight-70b", created: 0, ownedBy: "test")])
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        }
        return BodyThenAnswer(stream: stream, refuses: self.refusesUnstreamed)
    }

    /// Reads the body, then answers by its `stream` member.
    private final class BodyThenAnswer: HTTPStreamDelegate {
        let stream: any HTTPStream
        let refuses: Bool
        var body = ByteBuffer()
        init(stream: any HTTPStream, refuses: Bool) {
            self.stream = stream
            self.refuses = refuses
        }
        func streamDidReceiveData(_ data: ByteBuffer) { self.body.writeImmutableBuffer(data) }
        func streamDidReceiveEnd(trailers: HTTPFields?) {
            if String(buffer: self.body).contains(#""stream":true"#) {
                return self.answer(.ok, "text/event-stream", ByteBuffer())
            }
            guard self.refuses else { return self.answer(.ok, "application/json", ByteBuffer(string: "{}")) }
            let error = APIErrorBody(
                message: "This model's maximum context length is 2048 tokens.", type: "invalid_request_error",
                code: "context_length_exceeded", param: "messages")
            self.answer(.badRequest, "application/json", JSON.buffer(error))
        }
        func streamDidClose(error: HTTPStreamError?) {}
        private func answer(_ status: HTTPResponse.Status, _ type: String, _ body: ByteBuffer) {
            self.stream.sendResponse(status: status, contentType: type, body: body, headers: [:])
        }
    }
}
