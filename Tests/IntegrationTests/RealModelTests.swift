import AsyncHTTPClient
import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import NIOCore
import Testing

/// A real model behind the agent (issue #6): llama-cpp-python's server with SmolLM2-135M, the
/// `openai-local` engine, the gateway, and real clients. With `CI=true` a missing runtime fails.
@Suite(
    "A real model end to end", .serialized,
    .enabled(if: LocalRuntime.required || ProcessInfo.processInfo.environment["FLEETGATE_MODEL"] != nil))
struct RealModelTests {
    /// The runtime, a gateway, and one car in eu-central running the engine in front of the runtime.
    func withRealCar(_ body: (FleetFixture, LocalRuntime, OpenAILocalEngine, String) async throws -> Void) async throws
    {
        let runtime = try await LocalRuntime.start()
        defer { runtime.stop() }
        let engine = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, slots: 1), client: .shared)
        #expect(engine.models.map(\.id) == [LocalRuntime.model])
        try await withFleet { fleet in
            let pseudonym = try await fleet.startCar("real-car", engine: engine)
            try await body(fleet, runtime, engine, pseudonym)
        }
    }

    static let sdkScript = #"""
        import json, sys, time, openai
        client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
        messages = [{"role": "user", "content": "Write a long story about a car that drives across Europe."}]
        raw = client.chat.completions.with_raw_response.create(
            model=sys.argv[2], stream=True, max_tokens=48, messages=messages)
        started = time.monotonic()
        arrivals, text, finish = [], "", None
        for chunk in raw.parse():
            for choice in chunk.choices:
                if choice.delta.content:
                    arrivals.append(time.monotonic() - started)
                    text += choice.delta.content
                finish = choice.finish_reason or finish
        whole = client.chat.completions.create(model=sys.argv[2], max_tokens=16, messages=messages)
        print(json.dumps({
            "route": raw.headers.get("x-fleet-route"), "vehicle": raw.headers.get("x-fleet-vehicle"),
            "arrivals": arrivals, "chars": len(text), "finish": finish,
            "decode_tps": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 2 else 0,
            "whole_chars": len(whole.choices[0].message.content or ""), "whole_finish": whole.choices[0].finish_reason,
            "whole_object": whole.object,
        }))
        """#

    @Test(
        "The official openai SDK and curl get real model text through gateway and agent, token by token; the car reports the decode rate the client sees"
    )
    func realClients() async throws {
        try await self.withRealCar { fleet, runtime, engine, pseudonym in
            let python = try #require(ProcessInfo.processInfo.environment["FLEETGATE_PYTHON"])
            let result = try await Subprocess.run(
                python, ["-c", Self.sdkScript, fleet.baseURL, LocalRuntime.model], timeout: 120)
            #expect(result.status == 0, "\(result.stderr.suffix(2_000))")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            #expect(report["route"] as? String == "car")
            #expect(report["vehicle"] as? String == pseudonym)
            let arrivals = try #require(report["arrivals"] as? [Double])
            // Token by token: many chunks, arriving over time rather than in one burst.
            #expect(arrivals.count >= 16, "\(arrivals.count) chunks")
            #expect((arrivals.last ?? 0) - (arrivals.first ?? 0) > 0.1, "\(arrivals)")
            #expect(
                Set(arrivals.map { ($0 * 200).rounded() }).count >= 8, "chunks should arrive at many distinct times")
            #expect(["stop", "length"].contains(report["finish"] as? String))
            #expect((report["chars"] as? Int ?? 0) > 20)
            #expect((report["whole_chars"] as? Int ?? 0) > 0)
            #expect(report["whole_object"] as? String == "chat.completion")
            #expect(["stop", "length"].contains(report["whole_finish"] as? String))

            // The car measured the runtime and told the gateway; within 30 % of what the client saw.
            // (The car's figure is an EWMA, α = 0.5, over both jobs of the script — the streamed 48
            // tokens the client timed and the 16-token non-streamed one it did not — so it is not
            // the same measurement: 23 % apart was seen on an idle machine.)
            // The gateway believes no car beyond its hardware class's bound (#20: 4× the class profile),
            // so the figure to compare is the client's rate up to that bound (session 7: a faster agent
            // let this runtime reach 131 tok/s, past the bound of 80).
            let clientRate = try #require(report["decode_tps"] as? Double)
            var reported = 0.0
            var bound = Double.infinity
            try await waitUntil("the car reports measured rates") {
                let car = fleet.gateway.core.registry.all().first { $0.descriptor.vehicleID == "real-car" }
                reported = car?.descriptor.models.first?.decodeTokensPerSecond ?? 0
                if let hardware = car?.descriptor.hardware {
                    bound = HardwareProfile.of(hardware).decodeTokensPerSecond * FleetRegistry.advertisedRateBound
                }
                return reported != 20  // 20 tok/s is the configured guess before a measurement
            }
            let believed = min(clientRate, bound)
            #expect(
                abs(reported - believed) / believed < 0.3,
                "car reports \(reported) tok/s, client measured \(clientRate), bound \(bound)")

            let curl = try await Subprocess.run(
                "curl",
                [
                    "-sN", "--http2-prior-knowledge", fleet.baseURL + "/v1/chat/completions", "-H",
                    "content-type: application/json", "-d",
                    #"{"model":"smollm2-135m","stream":true,"max_tokens":24,"messages":[{"role":"user","content":"Hello, who are you?"}]}"#,
                ], timeout: 60)
            let events = curl.stdout.split(separator: "\n").filter { $0.hasPrefix("data: ") }
            #expect(events.filter { $0.contains("\"content\":\"") && !$0.contains("\"content\":\"\"") }.count >= 5)
            #expect(events.last == "data: [DONE]")
            _ = runtime
        }
    }

    static let refusalScript = #"""
        import json, sys, openai
        client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
        out = {}
        raw = client.chat.completions.with_raw_response.create(model=sys.argv[2], max_tokens=4, messages=[
            {"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "Hi"}])
        out["developer"] = [raw.http_response.status_code, raw.headers.get("x-fleet-route")]
        for stream in (True, False):
            try:
                answer = client.chat.completions.create(model=sys.argv[2], max_tokens=3, stream=stream,
                    messages=[{"role": "user", "content": "word " * 5000}])
                out["long_%s" % str(stream).lower()] = ["answered", str(answer)[:200]]
            except openai.BadRequestError as e:
                out["long_%s" % str(stream).lower()] = [e.status_code, e.code, e.message[:200]]
            except openai.APIError as e:
                out["long_%s" % str(stream).lower()] = [getattr(e, "status_code", None), str(e)[:200]]
        after = client.chat.completions.create(model=sys.argv[2], max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
        out["after"] = after.choices[0].finish_reason
        print(json.dumps(out))
        """#

    @Test(
        "llama-cpp-python's refusals reach the openai SDK as OpenAI's: a developer message is served, a prompt over the context is 400 context_length_exceeded streamed too, and the car is not benched (helper-100)"
    )
    func runtimeRefusalsAsOpenAI() async throws {
        try await self.withRealCar { fleet, _, _, _ in
            let python = try #require(ProcessInfo.processInfo.environment["FLEETGATE_PYTHON"])
            let result = try await Subprocess.run(
                python, ["-c", Self.refusalScript, fleet.baseURL, LocalRuntime.model], timeout: 120)
            #expect(result.status == 0, "\(result.stderr.suffix(2_000))")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            // The runtime answers a developer message with a 500, which was a 502 the SDK retried.
            #expect(report["developer"] as? [AnyHashable] == [200, "car"], "\(report)")
            // Streamed, the runtime answers a prompt over its context with an empty 200: that was a 502.
            for key in ["long_true", "long_false"] {
                let refusal = report[key] as? [Any]
                #expect(refusal?.first as? Int == 400, "\(key): \(report)")
                #expect(refusal?.dropFirst().first as? String == "context_length_exceeded", "\(key): \(report)")
            }
            // The next request is served at once: the refusal was the request's, not the car's.
            #expect(["stop", "length"].contains(report["after"] as? String), "\(report)")
        }
    }

    @Test("Cancelling mid-stream stops the model: the runtime's CPU time stops growing")
    func cancellationStopsTheModel() async throws {
        try await self.withRealCar { fleet, runtime, engine, _ in
            let before = runtime.cpuSeconds()
            // curl gives up after 2 s of a 1,500-token answer: the client goes away mid-stream.
            let curl = try await Subprocess.run(
                "curl",
                [
                    "-sN", "--max-time", "2", "--http2-prior-knowledge", fleet.baseURL + "/v1/chat/completions", "-H",
                    "content-type: application/json", "-d",
                    #"{"model":"smollm2-135m","stream":true,"max_tokens":1500,"messages":[{"role":"user","content":"Write a very long story about the sea."}]}"#,
                ], timeout: 30)
            #expect(curl.stdout.contains("\"content\":"), "tokens were streaming before the cancel")
            let during = runtime.cpuSeconds() - before
            #expect(during > 0.2, "the model was generating (\(during) s of CPU)")
            try await waitUntil("the engine's job is cancelled") { engine.jobsCancelled == 1 && engine.activeJobs == 0 }
            try await Task.sleep(for: .milliseconds(500))
            let settled = runtime.cpuSeconds()
            try await Task.sleep(for: .seconds(2))
            let after = runtime.cpuSeconds() - settled
            // Generating, it burns ~1 CPU second per second; stopped, it idles.
            #expect(after < 0.2, "the runtime used \(after) s of CPU in the 2 s after the cancel")
        }
    }

    /// A stream on a real model whose car is lost mid-answer continues on another car from the
    /// delivered text (prefix continuation through `/v1/completions` with SmolLM2's chat template).
    /// At temperature 0 the continued text often equals an uninterrupted run; the rate is measured
    /// and printed (tokenization at the seam can differ), never asserted.
    @Test("A real-model stream that loses its car continues from the delivered text on another car")
    func prefixContinuation() async throws {
        let runtime = try await LocalRuntime.start()
        defer { runtime.stop() }
        let configuration = OpenAILocalEngine.Configuration(baseURL: runtime.baseURL, slots: 1)
        let engineA = try await OpenAILocalEngine.connect(configuration, client: .shared)
        let engineB = try await OpenAILocalEngine.connect(configuration, client: .shared)
        #expect(engineA.continuation == .prefix)
        try await withFleet { fleet in
            try await fleet.startCar("real-a", engine: engineA)
            try await fleet.startCar("real-b", engine: engineB)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let prompts = [
                "Write a long story about a car that drives across Europe.",
                "Explain how a battery charges, step by step.",
                "List ten things to see in Stockholm and say why.",
                "Describe a quiet night in a parking garage.",
            ]
            // llama-cpp-python's default repeat penalty (1.1) counts only generated tokens, so text
            // that moved into the prompt at the seam is no longer penalised: measured both ways.
            var equal: [String: Int] = [:]
            for (penalty, prompt) in ["default", "1.0"].flatMap({ p in prompts.map { (p, $0) } }) {
                func body() -> String {
                    #"{"model":"\#(LocalRuntime.model)","stream":true,"temperature":0,"max_tokens":40,"#
                        + (penalty == "default" ? "" : #""repeat_penalty":\#(penalty),"#)
                        + #""messages":[{"role":"user","content":"\#(prompt)"}]}"#
                }
                let reference = streamResult(
                    await (try await client.post("/v1/chat/completions", json: body())).collect())
                #expect(reference.done)
                let stream = try await client.post("/v1/chat/completions", json: body())
                try await waitUntil(timeout: .seconds(30), "eight tokens delivered") {
                    String(decoding: stream.body, as: UTF8.self).components(separatedBy: "\"content\":\"").count > 9
                }
                let delivered = streamResult((nil, String(decoding: stream.body, as: UTF8.self), nil, false)).text
                // Lose the car serving it: the gateway's side of its tunnel closes, as a lost link would.
                for car in fleet.gateway.core.registry.all() where car.inFlight > 0 {
                    fleet.gateway.core.tunnels.handle(for: car.id)?.channel.close(promise: nil)
                }
                let result = streamResult(await stream.collect())
                #expect(result.errorCode == nil, "\(result.errorMessage ?? "")")
                #expect(result.done)
                #expect(result.ids.count == 1)
                #expect(result.text.hasPrefix(delivered))
                #expect(result.text.count > delivered.count)
                if result.text == reference.text { equal[penalty, default: 0] += 1 }
                try await waitUntil(timeout: .seconds(20), "both cars back") {
                    fleet.gateway.core.registry.all().filter { !$0.draining }.count == 2
                }
            }
            print(
                "prefix continuation on SmolLM2, temperature 0, equal to the uninterrupted run: "
                    + "repeat_penalty default \(equal["default"] ?? 0) of \(prompts.count), "
                    + "repeat_penalty 1.0 \(equal["1.0"] ?? 0) of \(prompts.count)")
        }
    }

    @Test("llama-cpp-python's own server as central capacity: its json.dumps chunks stream, over HTTP/1.1 and HTTP/2")
    func llamaServerAsCentral() async throws {
        let runtime = try await LocalRuntime.start()
        defer { runtime.stop() }
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-central", baseURL: runtime.baseURL)]
        }) {
            fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains(LocalRuntime.model)
            }
            for http in ["--http1.1", "--http2-prior-knowledge"] {
                let curl = try await Subprocess.run(
                    "curl",
                    [
                        "-sN", "--max-time", "60", http, "-D", "-", fleet.baseURL + "/v1/chat/completions", "-H",
                        "content-type: application/json", "-d",
                        #"{"model":"smollm2-135m","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"Say hello."}]}"#,
                    ], timeout: 90)
                #expect(
                    curl.stdout.lowercased().contains("x-fleet-route: central"), "\(http): \(curl.stdout.prefix(400))")
                #expect(curl.stdout.hasSuffix("data: [DONE]\n\n"), "\(http): \(curl.stdout.suffix(200))")
            }
        }
    }
}
