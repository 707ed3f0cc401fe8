import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// The official `openai` SDK's Responses calls, run by `FLEETGATE_PYTHON`. Every event and object
/// is validated strictly against the SDK's own pydantic model (`model_validate`), so a missing or
/// mistyped field fails — the SDK's lenient parsing alone would not.
let responsesSDKScript = #"""
    import json, sys, openai
    client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
    model = sys.argv[2]
    strict = lambda obj: type(obj).model_validate(obj.to_dict())
    out = {}

    raw = client.responses.with_raw_response.create(
        model=model, input="Hello, fleet", instructions="Be brief.", max_output_tokens=20,
        metadata={"ticket": "42"}, user="u1", temperature=0.7, top_p=0.9, store=False)
    whole = strict(raw.parse())
    out["whole"] = {
        "object": whole.object, "status": whole.status, "text": whole.output_text, "id": whole.id,
        "usage": [whole.usage.input_tokens, whole.usage.output_tokens, whole.usage.total_tokens],
        "metadata": whole.metadata, "instructions": whole.instructions, "items": [o.type for o in whole.output],
        "headers": {k: v for k, v in raw.headers.items() if k.startswith("x-fleet-")},
        "incomplete": whole.incomplete_details.reason if whole.incomplete_details else None,
    }

    events = []
    for event in client.responses.create(
            model=model, input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello, fleet"}]}],
            max_output_tokens=20, stream=True):
        strict(event)
        events.append({"type": event.type, "seq": event.sequence_number, "class": type(event).__name__,
                       "delta": getattr(event, "delta", None), "text": getattr(event, "text", None)})
    out["events"] = events

    # No limit: the answer ends by itself, with response.completed (the helper's final response
    # needs it; after response.incomplete it raises, as it does against OpenAI).
    with client.responses.stream(model=model, input="Hello, fleet") as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = strict(stream.get_final_response())
    out["helper"] = {"deltas": deltas, "text": final.output_text, "status": final.status,
                     "output_tokens": final.usage.output_tokens}

    refused = {}
    for name, kwargs in [
        ("web_search", {"tools": [{"type": "web_search_preview"}]}),
        ("file_search", {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
        ("code_interpreter", {"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
        ("computer_use", {"tools": [{"type": "computer_use_preview", "display_width": 1024,
                                     "display_height": 768, "environment": "linux"}]}),
        ("background", {"background": True}),
        ("previous_response_id", {"previous_response_id": "resp_123"}),
        ("store", {"store": True}),
    ]:
        try:
            client.responses.create(model=model, input="x", **kwargs)
            refused[name] = None
        except openai.BadRequestError as error:
            refused[name] = {"status": error.status_code, "param": error.body.get("param"),
                             "message": error.body.get("message")}
    try:  # zone enforcement as for chat: a residency outside the origin's zone
        client.responses.create(model=model, input="x", extra_headers={"x-fleet-residency": "us"})
        out["residency"] = None
    except openai.BadRequestError as error:
        out["residency"] = error.body.get("param")
    try:
        client.responses.retrieve("resp_123")
        out["retrieve"] = None
    except openai.NotFoundError as error:
        out["retrieve"] = error.body.get("message")
    out["refused"] = refused
    print(json.dumps(out))
    """#

/// Runs ``responsesSDKScript`` against `baseURL`; returns its JSON report.
func runResponsesSDK(baseURL: String, model: String) async throws -> [String: Any] {
    let python = try #require(
        ProcessInfo.processInfo.environment["FLEETGATE_PYTHON"], "run via scripts/test.sh, which sets FLEETGATE_PYTHON")
    let result = try await Subprocess.run(python, ["-c", responsesSDKScript, baseURL, model], timeout: 120)
    try #require(result.status == 0, "\(result.stderr.suffix(3_000))")
    return try #require(
        try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
}

/// The Responses events a client received, decoded, with their `event:` names checked.
func responseEvents(_ body: String) throws -> [ResponseEvent] {
    try body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
        let lines = block.components(separatedBy: "\n")
        try #require(lines.count == 2 && lines[1].hasPrefix("data: "), "\(block.prefix(80))")
        let event = try JSONDecoder().decode(ResponseEvent.self, from: Data(lines[1].dropFirst(6).utf8))
        try #require(lines[0] == "event: " + event.type)
        return event
    }
}

@Suite("POST /v1/responses", .timeLimit(.minutes(2)))
struct ResponsesTests {
    /// The events of a complete streamed response, in order (the deltas collapsed to one).
    static let completeSequence = [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]

    static func collapsed(_ types: [String]) -> [String] {
        types.enumerated().filter { $0.offset == 0 || $0.element != types[$0.offset - 1] }.map(\.element)
    }

    @Test(
        "The official SDK: create (whole and streamed) and the stream helper on a car, typed events in order; each unsupported parameter a 400 naming it"
    )
    func officialSDK() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let report = try await runResponsesSDK(baseURL: fleet.baseURL, model: "fleet-8b")
            let expected = referenceText(prompt: "Hello, fleet", maxTokens: 20)

            let whole = try #require(report["whole"] as? [String: Any])
            #expect(whole["object"] as? String == "response")
            #expect(whole["status"] as? String == "incomplete", "20 tokens of a longer text: the limit ended it")
            #expect(whole["incomplete"] as? String == "max_output_tokens")
            #expect(whole["items"] as? [String] == ["message"])
            #expect((whole["text"] as? String)?.isEmpty == false)
            #expect((whole["id"] as? String)?.hasPrefix("resp_") == true)
            #expect(whole["metadata"] as? [String: String] == ["ticket": "42"])
            #expect(whole["instructions"] as? String == "Be brief.")
            let usage = try #require(whole["usage"] as? [Int])
            #expect(usage.count == 3 && usage[1] == 20 && usage[0] > 0 && usage[2] == usage[0] + usage[1])
            let headers = try #require(whole["headers"] as? [String: String])
            #expect(headers["x-fleet-route"] == "car" && headers["x-fleet-zone"] == "eu")
            #expect(headers["x-fleet-vehicle"] != nil && headers["x-fleet-attempts"] == "1")

            let events = try #require(report["events"] as? [[String: Any]])
            let types = events.compactMap { $0["type"] as? String }
            #expect(Self.collapsed(types) == Self.completeSequence.dropLast() + ["response.incomplete"])
            #expect(events.compactMap { $0["seq"] as? Int } == Array(0..<events.count))
            #expect(events.allSatisfy { ($0["class"] as? String)?.hasPrefix("Response") == true }, "\(events)")
            let deltas = events.compactMap { $0["delta"] as? String }
            #expect(deltas.count == 20 && deltas.joined() == expected)
            #expect(events.compactMap { $0["text"] as? String } == [expected])

            let helper = try #require(report["helper"] as? [String: Any])
            let natural = try #require(helper["output_tokens"] as? Int)
            #expect(natural >= 64, "no limit: the synthetic answer's own length")
            let full = referenceText(prompt: "Hello, fleet", maxTokens: natural)
            #expect(helper["deltas"] as? String == full && helper["text"] as? String == full)
            #expect(helper["status"] as? String == "completed")

            let refused = try #require(report["refused"] as? [String: [String: Any]])
            for (name, param) in [
                ("web_search", "tools"), ("file_search", "tools"), ("code_interpreter", "tools"),
                ("computer_use", "tools"), ("background", "background"),
                ("previous_response_id", "previous_response_id"), ("store", "store"),
            ] {
                #expect(refused[name]?["status"] as? Int == 400, "\(name)")
                #expect(refused[name]?["param"] as? String == param, "\(name): \(refused[name] ?? [:])")
            }
            #expect((report["retrieve"] as? String)?.contains("stores no responses") == true)
            #expect(report["residency"] as? String == "x-fleet-residency")

            // Metrics are labelled by the API's route.
            let client = try await RecordingClient.connect(port: fleet.adminPort)
            defer { client.close() }
            let metrics = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "admin", path: "/metrics"), body: nil
            ).collect().body
            let lines = metrics.split(separator: "\n").filter { $0.hasPrefix("http_server_requests_total") }
            #expect(
                lines.contains { $0.contains("\"/v1/responses\"") && $0.contains("\"200\"") && $0.hasSuffix(" 3") },
                "\(lines)")
            #expect(
                lines.contains { $0.contains("\"/v1/responses\"") && $0.contains("\"400\"") && $0.hasSuffix(" 8") },
                "\(lines)")
        }
    }

    @Test("A car leaving mid-stream: the Responses stream continues on another car, one response, token for token")
    func failover() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 2)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let stream = try await client.post(
                "/v1/responses",
                json: #"{"model":"fleet-8b","stream":true,"max_output_tokens":80,"input":"responses failover"}"#)
            let logB = temporaryJobLog("resp-b")
            var b = CarSpec("car-b", slowdown: 2)
            b.jobLog = logB
            try await fleet.startCar(b)
            try await Task.sleep(for: .milliseconds(400))
            let gateway = fleet.gateway.core
            for car in gateway.registry.all() where car.descriptor.vehicleID == "car-a" {
                gateway.registry.setDraining(car.id)
                gateway.tunnels.announceDeparture(car.id, secondsLeft: 1)
            }
            let collected = await stream.collect()
            #expect(collected.response?.status.code == 200)
            let events = try responseEvents(collected.body)
            #expect(
                Self.collapsed(events.map(\.type)) == Self.completeSequence.dropLast() + ["response.incomplete"],
                "\(events.last?.response?.error?.message ?? "")")
            #expect(events.map(\.sequenceNumber) == Array(0..<events.count))
            let expected = referenceText(prompt: "responses failover", maxTokens: 80)
            #expect(events.compactMap(\.delta).joined() == expected)
            let final = try #require(events.last?.response)
            #expect(final.id == events.first?.response?.id)
            #expect(final.output.first?.message?.content.first?.text == expected)
            #expect(final.usage?.outputTokens == 80)
            // The car appends its record when its stream closes, which may be just after the client's end.
            try await waitUntil("car-b's record of the continuation") {
                try JobLog.read(path: logB).contains { $0.resumeFrom > 0 }
            }
            #expect(try JobLog.read(path: logB).filter { $0.resumeFrom > 0 }.count == 1, "continued once, on car-b")
        }
    }

    @Test("The only car lost mid-stream: response.failed, where chat sends its SSE error event")
    func failed() async throws {
        try await withFleet { fleet in
            let a = try AgentProcess(
                vehicleID: "only", region: "eu-central",
                token: try fleet.token(vehicleID: "only", region: "eu-central"), tunnelPort: fleet.tunnelPort,
                jobLog: temporaryJobLog("resp-only"), slowdown: 2)
            defer { a.stop() }
            try await waitUntil("car registered") {
                fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "only" }
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let stream = try await client.post(
                "/v1/responses", json: #"{"model":"fleet-8b","stream":true,"max_output_tokens":200,"input":"x"}"#)
            try await Task.sleep(for: .milliseconds(500))
            a.kill9()
            let collected = await stream.collect()
            #expect(collected.response?.status.code == 200)
            let events = try responseEvents(collected.body)
            #expect(events.last?.type == "response.failed")
            let failed = try #require(events.last?.response)
            #expect(failed.status == "failed" && failed.error?.code == "server_error")
            #expect(failed.output.first?.message?.content.first?.text == events.compactMap(\.delta).joined())
        }
    }
}

extension RealModelTests {
    @Test("The official SDK's Responses calls get real model text through gateway and agent, typed events in order")
    func responsesAPI() async throws {
        try await self.withRealCar { fleet, _, _, pseudonym in
            let report = try await runResponsesSDK(baseURL: fleet.baseURL, model: LocalRuntime.model)
            let whole = try #require(report["whole"] as? [String: Any])
            #expect(["completed", "incomplete"].contains(whole["status"] as? String))
            #expect((whole["text"] as? String)?.isEmpty == false)
            #expect((whole["headers"] as? [String: String])?["x-fleet-vehicle"] == pseudonym)
            let usage = try #require(whole["usage"] as? [Int])
            #expect(usage[0] > 5 && usage[1] > 0 && usage[1] <= 20, "\(usage)")

            let events = try #require(report["events"] as? [[String: Any]])
            let types = ResponsesTests.collapsed(events.compactMap { $0["type"] as? String })
            #expect(types.prefix(5) == ResponsesTests.completeSequence.prefix(5))
            #expect(["response.completed", "response.incomplete"].contains(types.last ?? ""))
            #expect(events.compactMap { $0["seq"] as? Int } == Array(0..<events.count))
            #expect(events.compactMap { $0["delta"] as? String }.count >= 5)

            let helper = try #require(report["helper"] as? [String: Any])
            #expect(helper["deltas"] as? String == helper["text"] as? String)
            #expect((helper["text"] as? String)?.isEmpty == false)
            #expect(helper["status"] as? String == "completed")
            #expect((report["refused"] as? [String: [String: Any]])?.count == 7)
        }
    }
}
