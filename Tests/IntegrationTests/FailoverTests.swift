import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// What a client made of one stream: its text, and whether it ended with the SSE error event.
struct StreamResult {
    var text: String
    var errorCode: String?
    var errorMessage: String?
    var done: Bool
    var status: Int
    var requestID: String?
    var ids: Set<String>
}

func streamResult(_ collected: (response: HTTPResponse?, body: String, error: HTTPStreamError?, ended: Bool))
    -> StreamResult
{
    var text = ""
    var errorCode: String?
    var errorMessage: String?
    var done = false
    var ids: Set<String> = []
    for event in collected.body.components(separatedBy: "\n\n") where event.hasPrefix("data: ") {
        let payload = String(event.dropFirst(6))
        if payload == SSE.done {
            done = true
            continue
        }
        if let chunk = try? JSONDecoder().decode(CompletionChunk.self, from: Data(payload.utf8)) {
            ids.insert(chunk.id)
            text += chunk.choices.compactMap { $0.delta?.content }.joined()
        } else if let error = try? JSONDecoder().decode(APIErrorBody.self, from: Data(payload.utf8)) {
            errorCode = error.error.code ?? "error"
            errorMessage = error.error.message
        }
    }
    return StreamResult(
        text: text, errorCode: errorCode, errorMessage: errorMessage, done: done,
        status: collected.response.map { $0.status.code } ?? 0,
        requestID: collected.response?.headerFields[HTTPField.Name("x-request-id")!], ids: ids)
}

/// The text the synthetic engine generates for `prompt` with `maxTokens`: computed from the
/// synthetic text function, not from another gateway run.
func referenceText(prompt: String, maxTokens: Int) -> String {
    let seed = SyntheticText.seed(for: Prompt("user: \(prompt)"), requested: nil)
    return (0..<maxTokens).map { SyntheticText.token(seed: seed, index: $0) }.joined()
}

func temporaryJobLog(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "fleet-jobs-\(name)-\(UUID().uuidString).jsonl"
    ).path
    FileManager.default.createFile(atPath: path, contents: nil)
    return path
}

@Suite("Never drop a stream", .timeLimit(.minutes(2)))
struct FailoverTests {
    /// Starts `count` streams of `maxTokens` tokens on one connection; returns their recordings.
    static func startStreams(
        _ client: RecordingClient, count: Int, maxTokens: Int, prefix: String, headers: HTTPFields = [:]
    ) async throws -> [(prompt: String, stream: RecordingStream)] {
        var streams: [(String, RecordingStream)] = []
        for i in 0..<count {
            let prompt = "\(prefix) \(i)"
            streams.append(
                (
                    prompt,
                    try await client.post(
                        "/v1/chat/completions", json: chatBody(stream: true, maxTokens: maxTokens, prompt: prompt),
                        headers: headers)
                ))
        }
        return streams
    }

    /// Waits until every stream has delivered a few tokens (so a fault lands mid-stream).
    static func waitUntilStreaming(_ streams: [(prompt: String, stream: RecordingStream)]) async throws {
        try await waitUntil(timeout: .seconds(30), "every stream streaming") {
            streams.allSatisfy {
                String(decoding: $0.stream.body, as: UTF8.self).components(separatedBy: "content").count > 3
            }
        }
    }

    @Test(
        "A car killed (-9) or frozen (SIGSTOP) mid-stream: every stream continues on another car, token for token",
        arguments: ["kill", "freeze"])
    func lostCar(fault: String) async throws {
        try await withFleet { fleet in
            let logA = temporaryJobLog("a"), logB = temporaryJobLog("b")
            let a = try await fleet.startAgentProcess("car-a", jobLog: logA, slowdown: 2)
            defer { a.stop() }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streams = try await Self.startStreams(client, count: 6, maxTokens: 60, prefix: "lost \(fault)")
            // Car B arrives while A serves; then A is lost mid-stream.
            let b = try await fleet.startAgentProcess("car-b", jobLog: logB, slowdown: 2)
            defer { b.stop() }
            try await Self.waitUntilStreaming(streams)
            if fault == "kill" { a.kill9() } else { a.freeze() }
            var results: [StreamResult] = []
            for (prompt, stream) in streams {
                let result = streamResult(await stream.collect())
                #expect(result.errorCode == nil, "\(prompt): ended with \(result.errorCode ?? "")")
                #expect(result.done, "\(prompt): no [DONE]")
                #expect(result.text == referenceText(prompt: prompt, maxTokens: 60), "\(prompt): text differs")
                #expect(result.ids.count == 1, "\(prompt): one id across the failover")
                results.append(result)
            }
            // Counted from B's job records: every stream was continued there from where A stopped.
            let records = try JobLog.read(path: logB)
            let continued = records.filter { $0.resumeFrom > 0 && $0.outcome == "completed" }
            #expect(continued.count == streams.count)
            #expect(
                continued.allSatisfy { $0.tokens == 60 - $0.resumeFrom && $0.zone == "eu" && $0.region == "eu-central" }
            )
        }
    }

    /// helper-65: central configured with `continuation: exact` was sent the delivered text as a
    /// prefix and never the resume point, so the answer changed at the switch.
    @Test("A car lost mid-stream continues on an exact central endpoint token for token")
    func lostCarContinuesOnExactCentral() async throws {
        let central = try await CentralServer.start(slowdown: 0.05)
        defer { central.channel.close(promise: nil) }
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-central", baseURL: central.baseURL, continuation: .exact)]
        }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let a = try await fleet.startAgentProcess("car-a", jobLog: temporaryJobLog("exact-a"), slowdown: 2)
            defer { a.stop() }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // One answer first: a new car holds one job while central has room (slow start), and this
            // test needs all three streams on the car.
            let warm = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 1))
                .collect()
            #expect(warm.response?.status == .ok)
            let streams = try await Self.startStreams(client, count: 3, maxTokens: 40, prefix: "exact central")
            try await Self.waitUntilStreaming(streams)
            a.kill9()
            for (prompt, stream) in streams {
                let result = streamResult(await stream.collect())
                #expect(result.errorCode == nil && result.done, "\(prompt): \(result.errorMessage ?? "")")
                #expect(result.text == referenceText(prompt: prompt, maxTokens: 40), "\(prompt): text differs")
            }
            // Central was asked to resume, with the original body: not the delivered text as a prefix.
            let continued = central.recorder.requests.filter { $0.path.hasSuffix("/chat/completions") }
            #expect(continued.count == streams.count)
            let resume = HTTPField.Name(FleetHeader.resumeFrom)!
            #expect(continued.allSatisfy { Int($0.headers[resume] ?? "") ?? 0 > 0 }, "\(continued.map(\.headers))")
            #expect(continued.allSatisfy { !String(buffer: $0.body).contains("\"assistant\"") })
        }
    }

    /// helper-65: with one central endpoint in the zone, a reset on the way to it ended every central
    /// stream ("no car or central endpoint can continue it") while central stayed healthy.
    @Test("A central stream cut by the network continues on the same healthy endpoint, token for token")
    func centralBlipContinuesThere() async throws {
        let central = try await CentralServer.start(slowdown: 1)
        defer { central.channel.close(promise: nil) }
        let path = try await TCPForwarder.start(to: central.channel.localAddress!.port!)
        defer { path.stop() }
        try await withFleet(configure: {
            $0.central.endpoints = [
                .init(region: "eu-central", baseURL: "http://127.0.0.1:\(path.port)/v1", continuation: .exact)
            ]
        }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streams = try await Self.startStreams(client, count: 2, maxTokens: 30, prefix: "central blip")
            try await Self.waitUntilStreaming(streams)
            path.closeAll()
            for (prompt, stream) in streams {
                let result = streamResult(await stream.collect())
                #expect(result.errorCode == nil && result.done, "\(prompt): \(result.errorMessage ?? "")")
                #expect(result.text == referenceText(prompt: prompt, maxTokens: 30), "\(prompt): text differs")
            }
            let resume = HTTPField.Name(FleetHeader.resumeFrom)!
            let asked = central.recorder.requests.filter { $0.path.hasSuffix("/chat/completions") }
            #expect(asked.count(where: { $0.headers[resume] != nil }) == streams.count)
        }
    }

    @Test("A request whose state cannot move (tools, n > 1) ends with the SSE error when its car is lost")
    func notContinuable() async throws {
        try await withFleet { fleet in
            let a = try await fleet.startAgentProcess("car-a", jobLog: temporaryJobLog("nc-a"), slowdown: 2)
            defer { a.stop() }
            try await fleet.startCar(CarSpec("car-b", slowdown: 2))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Only car-a may take it: car-b is drained from new work until the stream has started.
            let b = try #require(fleet.gateway.core.registry.all().first { $0.descriptor.vehicleID == "car-b" })
            fleet.gateway.core.registry.setDraining(b.id)
            let body =
                #"{"model":"fleet-8b","stream":true,"max_tokens":60,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"none"}"#
            // `none`: the synthetic car answers in words (it would call `f` and end at once), still not movable.
            let stream = try await client.post("/v1/chat/completions", json: body)
            try await Task.sleep(for: .milliseconds(600))
            a.kill9()
            let result = streamResult(await stream.collect())
            #expect(result.status == 200)
            #expect(result.errorCode == "upstream_error")
            #expect(result.errorMessage?.contains("cannot be continued") == true, "\(result.errorMessage ?? "")")
            #expect(!result.done)
        }
    }

    @Test("A car that announces it leaves too soon has its streams moved before it goes")
    func departure() async throws {
        let logB = temporaryJobLog("dep-b")
        // The first cars are slow (80 tokens take ~6 s at slowdown 4), so that car-b's start and the
        // wait below, slow on a loaded CI machine, still leave every stream mid-answer at the
        // announcement (CI once saw 3 of 4 moved: the fourth had finished before it). No hedges: a slow
        // car's late first token could be hedged onto car-b once it joined, and that stream, served there
        // from its start, never moves (session 45 saw 3 of 4 again, the run 2 s shorter).
        try await withFleet(cars: [CarSpec("car-a", slowdown: 4)], configure: { $0.hedgeBudget = 0 }) { fleet in
            let a = try await fleet.startCar(CarSpec("car-a2", slowdown: 4))
            _ = a
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streams = try await Self.startStreams(client, count: 4, maxTokens: 80, prefix: "departure")
            var spec = CarSpec("car-b", slowdown: 2)
            spec.jobLog = logB
            try await fleet.startCar(spec)
            try await Self.waitUntilStreaming(streams)
            // Every car but B announces it leaves in one second: no stream can finish in that time.
            let gateway = fleet.gateway.core
            let running = streams.filter { !String(decoding: $0.stream.body, as: UTF8.self).contains("[DONE]") }
            // Both drained before either announces: announced one after the other, a stream of the first could
            // move to the second (not draining yet) and then on again (CI saw 3 of 4 on car-b).
            let leaving = gateway.registry.all().filter { $0.descriptor.vehicleID != "car-b" }
            for car in leaving { gateway.registry.setDraining(car.id) }
            for car in leaving { gateway.tunnels.announceDeparture(car.id, secondsLeft: 1) }
            #expect(running.count >= 2, "the machine was too slow for the test: \(running.count) of 4 still running")
            for (prompt, stream) in streams {
                let result = streamResult(await stream.collect())
                #expect(result.errorCode == nil)
                #expect(result.text == referenceText(prompt: prompt, maxTokens: 80), "\(prompt): text differs")
            }
            // Every stream still running at the announcement moved to car-b.
            let moved = try JobLog.read(path: logB).filter { $0.resumeFrom > 0 }
            #expect(moved.count == running.count)
        }
    }

    /// Two one-slot cars (HW3, fleet-3b, 15 tokens/s at slowdown 2), both there when the long stream is placed
    /// (so the other is on its ranked list), then a short stream that fills the other car.
    struct BusyPair {
        let agents: [String: AgentProcess]
        let logs: [String: String]
        let client: RecordingClient
        let long: RecordingStream
        let short: RecordingStream
        /// The car serving the long stream, and the other car's name.
        let longCar: CarSnapshot
        let other: String
        let prompts: (long: (prompt: String, tokens: Int), short: (prompt: String, tokens: Int))

        /// The long stream's car drains and says it leaves in a second (no stream of it can finish by then);
        /// returns once its move waits for the busy zone.
        func longCarLeaves(_ fleet: FleetFixture) async throws {
            let gateway = fleet.gateway.core
            gateway.registry.setDraining(self.longCar.id)
            gateway.tunnels.announceDeparture(self.longCar.id, secondsLeft: 1)
            try await waitUntil(timeout: .seconds(10), "the departure waiting") { gateway.capacityWaiters.count == 1 }
        }

        /// Both streams end whole: `[DONE]`, no error, the reference text, one chunk id.
        func expectBothWhole() async {
            for (stream, spec) in [(self.long, self.prompts.long), (self.short, self.prompts.short)] {
                let (prompt, tokens) = (spec.prompt, spec.tokens)
                let result = streamResult(await stream.collect())
                #expect(
                    result.errorCode == nil,
                    "\(prompt): ended with \(result.errorCode ?? "") \(result.errorMessage ?? "")")
                #expect(result.done, "\(prompt): no [DONE]")
                #expect(result.text == referenceText(prompt: prompt, maxTokens: tokens), "\(prompt): text differs")
                #expect(result.ids.count == 1, "\(prompt): one id across the move")
            }
        }

        func stop() {
            self.agents.values.forEach { $0.stop() }
            self.client.close()
        }
    }

    static func busyPair(
        _ fleet: FleetFixture, _ name: String, long: (prompt: String, tokens: Int), short: (prompt: String, tokens: Int)
    ) async throws -> BusyPair {
        let logs = ["car-a": temporaryJobLog("\(name)-a"), "car-b": temporaryJobLog("\(name)-b")]
        var agents: [String: AgentProcess] = [:]
        for car in ["car-a", "car-b"] {
            agents[car] = try await fleet.startAgentProcess(car, jobLog: logs[car]!, hardware: "hw3", slowdown: 2)
        }
        let client = try await RecordingClient.connect(port: fleet.clientPort)
        let longStream = try await client.post(
            "/v1/chat/completions",
            json: chatBody(model: "fleet-3b", stream: true, maxTokens: long.tokens, prompt: long.prompt))
        try await waitUntil(timeout: .seconds(10), "the long stream streaming") {
            String(decoding: longStream.body, as: UTF8.self).components(separatedBy: "content").count > 3
        }
        let longCar = try #require(fleet.gateway.core.registry.all().first { $0.inFlight == 1 })
        let other = longCar.descriptor.vehicleID == "car-a" ? "car-b" : "car-a"
        let shortStream = try await client.post(
            "/v1/chat/completions",
            json: chatBody(model: "fleet-3b", stream: true, maxTokens: short.tokens, prompt: short.prompt))
        try await waitUntil(timeout: .seconds(10), "the short stream streaming on \(other)") {
            String(decoding: shortStream.body, as: UTF8.self).contains("content")
        }
        return BusyPair(
            agents: agents, logs: logs, client: client, long: longStream, short: shortStream, longCar: longCar,
            other: other, prompts: (long, short))
    }

    @Test("A lost car's stream waits for the busy zone's next free slot and continues there, token for token")
    func waitsForBusyZone() async throws {
        try await withFleet { fleet in
            // The long stream's car is lost while the short one runs. helper-58: a car full at the
            // continuation's first look was marked tried and never offered again, so the stream waited 5 s
            // beside a free slot.
            let pair = try await Self.busyPair(fleet, "busy", long: ("busy long", 60), short: ("busy short", 30))
            defer { pair.stop() }
            let (logs, other) = (pair.logs, pair.other)
            pair.agents[pair.longCar.descriptor.vehicleID]!.kill9()
            await pair.expectBothWhole()
            // The other car served the short stream, then the long one's continuation, which waited for it.
            let records = try JobLog.read(path: logs[other]!)
            #expect(records.count == 2)
            #expect(
                records.contains { $0.resumeFrom > 0 && $0.outcome == "completed" && $0.tokens == 60 - $0.resumeFrom })
            #expect(try await fleet.counter("fleet_capacity_waits_total", label: "result", value: "served") == 1)
            #expect(try await fleet.counter("fleet_capacity_waits_total", label: "result", value: "gave_up") == 0)
        }
    }

    /// helper-124: while a lost stream waited for a car it fits, every free car was held back for it — a
    /// short request got 503 beside a free small car that the waiting stream could never use.
    @Test("A stream waiting for a car it fits does not hold back a free car too small for it")
    func waiterLeavesSmallCars() async throws {
        try await withFleet { fleet in
            let pair = try await Self.busyPair(fleet, "small", long: ("waiting long", 60), short: ("waiting short", 30))
            defer { pair.stop() }
            // ~4 prompt tokens + 60: over this car's 8; a 4-token answer to a 2-token prompt fits.
            let small = try await fleet.startAgentProcess(
                "car-s", jobLog: temporaryJobLog("small-s"), hardware: "hw3", slowdown: 2,
                extra: ["--context-tokens", "8"])
            defer { small.stop() }
            pair.agents[pair.longCar.descriptor.vehicleID]!.kill9()
            try await waitUntil(timeout: .seconds(10), "the lost stream waiting") {
                fleet.gateway.core.capacityWaiters.count == 1
            }
            let tiny = try await pair.client.post(
                "/v1/chat/completions", json: chatBody(model: "fleet-3b", stream: false, maxTokens: 4, prompt: "tiny")
            ).collect()
            #expect(tiny.response?.status == .ok, "\(tiny.body)")
            await pair.expectBothWhole()
        }
    }

    @Test(
        "A departing car's stream waits for the busy zone's next free slot and moves there before the car goes; if the car goes first, the wait goes on as its failover",
        arguments: [false, true])
    func departureWaitsForBusyZone(carGoesFirst: Bool) async throws {
        try await withFleet { fleet in
            // The long stream's car announces it leaves while the short stream fills the other. Asked once
            // (before session 41), the move found nobody and was never asked again: the car kept the stream
            // until it left, an unplanned failover.
            let pair = try await Self.busyPair(
                fleet, "depwait", long: ("departing long", 80), short: ("departing short", 20))
            defer { pair.stop() }
            let (logs, other) = (pair.logs, pair.other)
            try await pair.longCarLeaves(fleet)
            if carGoesFirst { pair.agents[pair.longCar.descriptor.vehicleID]!.kill9() }
            await pair.expectBothWhole()
            // The other car served the short stream, then the long one's continuation, which waited for it
            // while the departing car streamed on. Beside a departing car still there, an exact continuation as
            // fast as the car can trail it to the end (it takes over when the car goes, else the car finishes
            // and it is cancelled); once the car went, it is the whole rest of the answer.
            // A continuation cancelled when the departing car finished is logged once its car hears of it,
            // which can be after the client's `[DONE]`.
            try await waitUntil(timeout: .seconds(10), "the continuation's job record") {
                (try? JobLog.read(path: logs[other]!).count) == 2
            }
            let records = try JobLog.read(path: logs[other]!)
            let summary = "\(records.map { ($0.resumeFrom, $0.outcome, $0.tokens) })"
            #expect(records.count == 2, "\(summary)")
            #expect(records.contains { $0.resumeFrom > 0 }, "\(summary)")
            if carGoesFirst {
                #expect(
                    records.contains {
                        $0.resumeFrom > 0 && $0.outcome == "completed" && $0.tokens == 80 - $0.resumeFrom
                    },
                    "\(summary)")
            }
            #expect(try await fleet.counter("fleet_capacity_waits_total", label: "result", value: "served") == 1)
        }
    }

    @Test(
        "A departing car that finishes its stream while the move waits for a slot moved nothing: one attempt, no migration"
    )
    func departingCarFinishesWhileWaiting() async throws {
        // helper-116: the waiting continuation was held open, so the stream's trailers said 2 attempts and 1
        // migration, and the car's answer escaped the trust audit (which takes unmoved answers only).
        try await withFleet { fleet in
            let pair = try await Self.busyPair(
                fleet, "finish", long: ("finishes while waiting", 40), short: ("finishes filler", 200))
            defer { pair.stop() }
            let (stream, filler, gateway) = (pair.long, pair.short, fleet.gateway.core)
            try await pair.longCarLeaves(fleet)
            var trailers: HTTPFields?
            let bound = stream.bound()
            for await event in stream.events { if case .end(let fields) = event { trailers = fields } }
            bound.cancel()
            let result = streamResult(await stream.collect())
            #expect(result.done && result.errorCode == nil)
            #expect(result.text == referenceText(prompt: "finishes while waiting", maxTokens: 40))
            #expect(
                trailers?[HTTPField.Name("x-fleet-migrations")!] == nil,
                "nothing moved: \(String(describing: trailers))")
            #expect(trailers?[HTTPField.Name("x-fleet-attempts")!] ?? "1" == "1", "one attempt ran")
            #expect(gateway.capacityWaiters.count == 0)
            #expect(try await fleet.counter("fleet_capacity_waits_total", label: "result", value: "gone") == 1)
            _ = await filler.collect()
        }
    }

    @Test("Every car of a zone gone at once: streams end with the SSE error at once, new requests get 503")
    func zoneEmptied() async throws {
        try await withFleet { fleet in
            let a = try await fleet.startAgentProcess("only", jobLog: temporaryJobLog("only"), slowdown: 2)
            defer { a.stop() }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streams = try await Self.startStreams(client, count: 3, maxTokens: 200, prefix: "emptied")
            try await Task.sleep(for: .milliseconds(500))
            let killed = ContinuousClock.now
            a.kill9()
            for (_, stream) in streams {
                let result = streamResult(await stream.collect())
                #expect(result.status == 200)
                #expect(result.errorCode == "upstream_error")
                #expect(!result.done)
            }
            #expect(ContinuousClock.now - killed < .seconds(5))
            let next = await (try await client.post("/v1/chat/completions", json: chatBody(stream: true))).collect()
            #expect(next.response?.status.code == 503)
            #expect(next.body.contains("no_capacity_in_zone"))
            #expect(next.response?.headerFields[HTTPField.Name("x-should-retry")!] == "false")
        }
    }

    /// helper-124: a hedge of a long prompt went to a car whose window is too small, which refused at once —
    /// an attempt spent, and its 400 kept as the request's answer should the first car then fail.
    @Test("A slow first token is not hedged on a car whose context window the prompt does not fit")
    func noHedgeOnSmallWindow() async throws {
        try await withFleet(configure: { $0.hedgeBudget = 1 }) { fleet in
            let slow = try await fleet.startCar(
                "slow-ai5", hardware: .ai5, engine: SyntheticEngine(profile: .of(.ai5), slowdown: 5))
            var small = HardwareProfile.of(.hw4)
            small.contextTokens = 1_000
            _ = try await fleet.startCar("small-hw4", hardware: .hw4, engine: SyntheticEngine(profile: small))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // ~1,200 tokens: over the HW4's 1,000; 3.3 s of prefill on the slowed AI5, past its hedge delay.
            let prompt = String(repeating: "long prompt ", count: 400)
            let result = await
                (try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4, prompt: prompt))).collect()
            #expect(result.response?.status == .ok)
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == slow)
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "1")
        }
    }

    @Test("A slow first token is hedged on another car; the first real token wins and the loser's engine stops")
    func hedge() async throws {
        try await withFleet(configure: { $0.hedgeBudget = 1 }) { fleet in
            // Advertised as the fastest, secretly 50× slower: the predictor picks it first (#13: the
            // prompt is long enough that only the AI5's advertised rate fits the 1 s objective; with
            // both fitting, best fit would give the tighter fit, the HW4, first).
            let slow = try await fleet.startCar(CarSpec("slow-ai5", hardware: .ai5, slowdown: 50))
            let fast = try await fleet.startCar(CarSpec("honest-hw4", hardware: .hw4, slowdown: 1))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let prompt = String(repeating: "long prompt ", count: 400)
            let result = await
                (try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 8, prompt: prompt))).collect()
            #expect(result.response?.status == .ok)
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == fast.pseudonym)
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "2")
            #expect(streamResult(result).text == referenceText(prompt: prompt, maxTokens: 8))
            // The attempt the hedge beat had run longer than the hedge needed for its first token and
            // had none: it lost the race — not a failure, but its car learnt it is slower than it
            // advertised and is passed over for a while (helper-84: a car that lost every race was
            // never told).
            let cars = Dictionary(
                uniqueKeysWithValues: fleet.gateway.core.registry.all().map { ($0.descriptor.vehicleID, $0) })
            let loser = try #require(cars["slow-ai5"])
            #expect(loser.racesLost == 1 && loser.passedOverUntil > 0)
            #expect(loser.consecutiveFailures == 0 && loser.backoffUntil == 0)
            #expect((loser.learned.values.first?.prefillSlowdown ?? 0) > 1.5, "\(loser.learned)")
            #expect(cars["honest-hw4"].map { $0.racesLost == 0 && $0.consecutiveFailures == 0 } == true)
            // The loser was cancelled: it holds no job and generates nothing afterwards (at its secret
            // pace a token takes a second; it was still in prefill, 12 s long).
            try await waitUntil("loser cancelled") { slow.engine.activeJobs == 0 }
            let atCancel = slow.engine.tokensGenerated
            try await Task.sleep(for: .seconds(1))
            #expect(slow.engine.tokensGenerated == atCancel)
            #expect(slow.engine.jobsCancelled == 1)
        }
    }
}
