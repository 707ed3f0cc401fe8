import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// The crash reproducers and the unauthenticated body flood, against a `fleetgate` child process.
///
/// A trap is then a failed test rather than a dead test runner. With
/// `FLEETGATE_BINARY=.build/release/fleetgate` they check a release build.
@Suite("Hostile peers against a fleetgate process", .timeLimit(.minutes(2)))
struct HostilePeerTests {
    enum Client: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case http1 = "HTTP/1.1"
        case http2 = "HTTP/2"
        var testDescription: String { self.rawValue }
    }

    @Test(
        "A car's [DONE] before any token: a clean 502, or the next car's stream with [DONE] only at its end",
        arguments: Client.allCases)
    func doneBeforeToken(client: Client) async throws {
        let gateway = try await GatewayProcess.start()
        defer { gateway.stop() }
        let liar = try await self.car(gateway, "mallory", .doneBeforeToken)
        defer { liar.close() }
        try await gateway.waitForCars(1)

        let alone = try await curl(gateway, "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3), client)
        #expect(gateway.isRunning, "fleetgate \(gateway.status) after a [DONE]-first car; \(alone)")
        #expect(alone.status == 502, "\(alone)")
        #expect(throws: Never.self) { try JSONDecoder().decode(APIErrorBody.self, from: Data(alone.body.utf8)) }
        #expect(liar.jobs == 1)
        // The 502's line says why: the code the client got, then the attempt's label (helper-70).
        try await waitUntil(timeout: .seconds(5), "the 502's line with its error.type") {
            gateway.log.split(separator: "\n").contains {
                $0.hasSuffix("Request served") && $0.contains("fleet.status=502")
                    && $0.contains(": error.type=upstream_error:")
            }
        }

        // With an honest car beside it, whichever is tried first, the client sees one well-formed stream.
        let honest = try await self.car(gateway, "alice", .honest, hardware: .hw3)
        defer { honest.close() }
        try await gateway.waitForCars(2)
        for _ in 0..<3 {
            let result = try await curl(
                gateway, "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3), client)
            #expect(result.status == 200, "\(result)")
            let payloads = try ssePayloads(result.body)
            #expect(payloads.firstIndex(of: SSE.done) == payloads.count - 1, "\(result.body)")
            #expect(try chunks(payloads).compactMap { $0.choices.first?.delta?.content }.joined() == "one two three")
        }
        try await self.expectHealthy(gateway)
    }

    @Test(
        "A bad status stream (no models, too many, values out of range, a flood) closes that car's tunnel with a reason; the gateway serves on",
        arguments: [
            (HostileCar.Behaviour.emptyModelList, "no models"), (.hugeModelList(count: 100), "too many models"),
            (.hugeModelList(count: 2_000), "status line over 16 KiB"),
            // helper-97: a charge of 200 % was stored and shown, and 4,000 state lines a second were read.
            (
                .statusLines([.state(VehicleState(pluggedIn: true, chargePercent: 200, link: .wifi, slotsFree: 1))]),
                "charge_percent outside 0-100"
            ),
            (
                .statusLines(
                    [.state(VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1))],
                    repeated: 150), "status flood"
            ),
        ] as [(HostileCar.Behaviour, String)])
    func badModelList(behaviour: HostileCar.Behaviour, reason: String) async throws {
        let gateway = try await GatewayProcess.start()  // lag shedding off (session 37's CI shed the honest car)
        defer { gateway.stop() }
        let car = try await self.car(gateway, "mallory", behaviour)
        defer { car.close() }
        try await car.waitForClose()
        #expect(
            gateway.isRunning,
            "fleetgate \(gateway.status) after a hello with a bad model list: \(gateway.log.suffix(600))")
        #expect(car.goAwayCode == .protocolError)
        // The line reaches the log through a pipe the test reads on its own thread: it can come a
        // moment after the car saw its tunnel close (a CI run failed on that race).
        try? await waitUntil(timeout: .seconds(5), "the rejection logged") { gateway.log.contains("Car rejected") }
        #expect(gateway.log.contains("Car rejected") && gateway.log.contains(reason), "\(gateway.log.suffix(2_000))")
        // Its claimed vehicle id as a pseudonym: logs never show vehicle ids (helper-128).
        #expect(!gateway.log.contains("mallory"), "\(gateway.log.suffix(2_000))")
        #expect(try await gateway.get("/readyz", admin: true).body.contains("\"cars\":0}"))

        let honest = try await self.car(gateway, "alice", .honest)
        defer { honest.close() }
        try await gateway.waitForCars(1)
        for client in Client.allCases {
            let result = try await curl(
                gateway, "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 3), client)
            #expect(result.status == 200, "\(client.rawValue): \(result)")
        }
        // The audit line (DESIGN.md, Contracts): one a request, fields sorted with the trace ids, where the answer
        // was served — never the prompt (`chatBody`'s "Hello, fleet") or the answer.
        // (Written after the answer's last byte, so waited for.)
        var audits: [Substring] = []
        try await waitUntil(timeout: .seconds(5), "an audit line a request") {
            audits = gateway.log.split(separator: "\n").filter {
                $0.hasSuffix("Request served") && $0.contains("fleet.route=car")
            }
            return audits.count == Client.allCases.count
        }
        for line in audits {
            #expect(
                try
                    #/\S+ info \S+: fleet\.attempts=1 fleet\.migrations=0 fleet\.origin\.country=\S+ fleet\.origin\.region=\S+ fleet\.region=eu-central fleet\.request\.id=\S+ fleet\.route=car fleet\.status=200 fleet\.tokens=\d+ fleet\.vehicle=\S+ fleet\.zone=\S+ span_id=[0-9a-f]{16} trace_id=[0-9a-f]{32} \[FleetGate\] Request served/#
                    .wholeMatch(in: line) != nil, "\(line)")
        }
        #expect(!gateway.log.contains("Hello, fleet") && !gateway.log.contains("one two three"))
        try await self.expectHealthy(gateway)
    }

    /// helper-97: a car's error event put its own text (`<script>`) into every client's 502 message.
    @Test("A car's error message reaches the client's 502 only as plain text marked as the car's runtime's")
    func carErrorTextWithheld() async throws {
        let said = #"data: {"error":{"message":"<script>x</script> visit evil.example","type":"x","code":"x"}}"#
        let result = try await self.answer(ofLiarSaying: said)
        #expect(result.status == 502, "\(result)")
        let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(result.body.utf8))
        #expect(
            error.error.message.hasSuffix(
                "The last upstream error: (a car's runtime) scriptx/script visit evil.example"),
            "\(error.error.message)")
        #expect(error.error.message.hasPrefix("No car or central endpoint could serve the request"))
    }

    /// helper-98: a car's rejection (a 4xx of its runtime) passed to the client as the car wrote it.
    @Test("A car's rejection reaches the client rebuilt: its code and field if well formed, its words marked and plain")
    func carRejectionRebuilt() async throws {
        let said =
            #"data: {"error":{"message":"<script>x</script>\n visit\tnow","type":"x","code":"evil code!","param":"a\"b","extra":1},"fleet_status":400}"#
        let result = try await self.answer(ofLiarSaying: said)
        #expect(result.status == 400, "\(result)")
        let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(result.body.utf8))
        #expect(error.error.code == "rejected" && error.error.param == nil, "\(result.body)")
        #expect(error.error.type == "invalid_request_error")
        #expect(
            error.error.message
                == "The model runtime serving this request rejected it (rejected). The runtime said: scriptx/script visit now",
            "\(error.error.message)")
        #expect(!result.body.contains("extra") && !result.body.contains("fleet_status"))
    }

    @Test(
        "A central server writing JSON as Python's json.dumps does serves streamed and whole answers",
        arguments: Client.allCases, [true, false])
    func spacedJSONCentral(client: Client, stream: Bool) async throws {
        let central = try await CentralServer.start(json: .python)
        defer { central.channel.close(promise: nil) }
        let gateway = try await GatewayProcess.start(["--central", "eu-central=\(central.baseURL)"])
        defer { gateway.stop() }
        try await waitUntil("central models discovered") {
            try await gateway.get("/v1/models").body.contains("fleet-8b")
        }

        let result = try await curl(
            gateway, "/v1/chat/completions", json: chatBody(stream: stream, maxTokens: 5), client)
        #expect(gateway.isRunning, "fleetgate \(gateway.status) relaying a json.dumps central; \(result)")
        #expect(result.status == 200, "\(result)")
        #expect(result.headers.contains("x-fleet-route: central"), "\(result.headers)")
        if stream {
            let payloads = try ssePayloads(result.body)
            #expect(payloads.last == SSE.done)
            #expect(
                try chunks(payloads).compactMap { $0.choices.first?.delta?.content }.filter { !$0.isEmpty }.count == 5)
        } else {
            let completion = try JSONDecoder().decode(CompletionResponse.self, from: Data(result.body.utf8))
            #expect(completion.usage.completionTokens == 5)
            #expect(completion.choices.first?.message?.content.isEmpty == false)
        }
        try await self.expectHealthy(gateway)
    }

    @Test("Without an API key, 2 connections × 250 streams × 1 MiB are refused with 401 on the head and not buffered")
    func unauthenticatedBodyFlood() async throws {
        let gateway = try await GatewayProcess.start(environment: ["FLEETGATE_AUTH_API_KEYS": "sk-test-key"])
        defer { gateway.stop() }
        let mebibyte = ByteBuffer(repeating: UInt8(ascii: "x"), count: 1 << 20)
        var streams: [RecordingStream] = []
        var clients: [RecordingClient] = []
        defer { for client in clients { client.close() } }
        for _ in 0..<2 {
            // Each refused stream ends with RST_STREAM(NO_ERROR): more in a second than the client's default allows.
            let client = try await RecordingClient.connect(port: gateway.clientPort, maxResetsPerSecond: 10_000)
            clients.append(client)
            for _ in 0..<250 {
                var request = HTTPRequest(
                    method: .post, scheme: "http", authority: "127.0.0.1", path: "/v1/chat/completions")
                request.headerFields[.contentType] = "application/json"
                // The body is left open: a gateway that waits for its end before checking the key never answers.
                streams.append(try await client.send(request, body: mebibyte, endStream: false))
            }
        }
        let tally = Tally()
        let opened = streams
        _ = try? await withTimeout(.seconds(10)) {
            await withTaskGroup(of: Void.self) { group in
                for stream in opened {
                    group.addTask { await tally.add(await stream.firstResponse()?.status.code ?? -1) }
                }
            }
        }
        var statuses = await tally.counts
        statuses[0] = 500 - statuses.values.reduce(0, +)
        if statuses[0] == 0 { statuses[0] = nil }
        #expect(statuses == [401: 500], "status → streams (-1: closed without an answer; 0: no answer within 10 s)")
        #expect(gateway.isRunning, "fleetgate \(gateway.status)")

        // HTTP/1.1: the same, on one connection, with a declared 1 MiB body of which 64 KiB is sent.
        let raw = try await RawConnection.connect(port: gateway.clientPort)
        try await raw.send(
            Array(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n\r\n"
                    .utf8) + Array(repeating: UInt8(ascii: "x"), count: 65_536))
        let answered = try? await withTimeout(.seconds(5)) {
            try await waitUntil("an HTTP/1.1 answer") {
                String(decoding: raw.received, as: UTF8.self).contains("\r\n\r\n")
            }
        }
        #expect(answered != nil && String(decoding: raw.received, as: UTF8.self).hasPrefix("HTTP/1.1 401"))
        raw.channel.close(promise: nil)
        try await self.expectHealthy(gateway, apiKey: "sk-test-key")
    }

    // MARK: Helpers

    private func car(
        _ gateway: GatewayProcess, _ vehicleID: String, _ behaviour: HostileCar.Behaviour,
        hardware: HardwareClass = .ai5
    ) async throws -> HostileCar {
        try await HostileCar.connect(
            port: gateway.tunnelPort, vehicleID: vehicleID, credential: try gateway.credential(vehicleID: vehicleID),
            region: "eu-central", behaviour: behaviour, hardware: hardware)
    }

    /// A `stream: false` request's answer, over HTTP/2, from a gateway whose one car writes `said` as
    /// its job's only event.
    private func answer(ofLiarSaying said: String) async throws -> CurlResult {
        let gateway = try await GatewayProcess.start()
        defer { gateway.stop() }
        let liar = try await self.car(
            gateway, "mallory", .scripted([.data(ByteBuffer(string: said + "\n\n")), .end]))
        defer { liar.close() }
        try await gateway.waitForCars(1)
        return try await curl(gateway, "/v1/chat/completions", json: chatBody(stream: false), .http2)
    }

    /// Still running, answers the next request, and never went over 100 MiB resident.
    private func expectHealthy(
        _ gateway: GatewayProcess, apiKey: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        #expect(gateway.isRunning, "fleetgate \(gateway.status)", sourceLocation: sourceLocation)
        guard gateway.isRunning else { return }
        #expect(try await gateway.get("/v1/models", apiKey: apiKey).status == 200, sourceLocation: sourceLocation)
        let memory = try #require(gateway.memory, sourceLocation: sourceLocation)
        #expect(memory.peak < 100 << 20, "peak RSS \(memory.peak >> 20) MiB", sourceLocation: sourceLocation)
        if ProcessInfo.processInfo.environment["FLEETGATE_PRINT_RSS"] != nil {
            print("fleetgate \(sourceLocation.line): RSS \(memory.resident >> 20) MiB, peak \(memory.peak >> 20) MiB")
        }
    }
}

/// Counts answers by status.
actor Tally {
    var counts: [Int: Int] = [:]
    func add(_ status: Int) { self.counts[status, default: 0] += 1 }
}

/// One curl exchange.
struct CurlResult: CustomStringConvertible {
    var status: Int?
    var headers: String
    var body: String
    var exit: Int32
    var stderr: String
    var description: String {
        "curl exit \(self.exit), status \(self.status.map(String.init) ?? "-"): \(self.body.prefix(300)) \(self.stderr)"
    }
}

/// `POST path` with curl, the way a user would try it, over HTTP/1.1 or HTTP/2 (prior knowledge).
func curl(_ gateway: GatewayProcess, _ path: String, json: String, _ client: HostilePeerTests.Client) async throws
    -> CurlResult
{
    let headers = FileManager.default.temporaryDirectory.appendingPathComponent("curl-headers-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: headers) }
    let result = try await Subprocess.run(
        "curl",
        [
            "-sS", "-N", "--max-time", "20", client == .http1 ? "--http1.1" : "--http2-prior-knowledge",
            "-H", "content-type: application/json", "-d", json, "-D", headers.path, "-w", "\n%{http_code}",
            gateway.baseURL + path,
        ])
    var lines = result.stdout.components(separatedBy: "\n")
    let status = lines.popLast().flatMap { Int($0) }.flatMap { $0 == 0 ? nil : $0 }
    let head = (try? String(contentsOf: headers, encoding: .utf8)) ?? ""
    return CurlResult(
        status: status, headers: head.lowercased().replacingOccurrences(of: "\r", with: ""),
        body: lines.joined(separator: "\n"), exit: result.status, stderr: result.stderr)
}

/// Runs `body`, throwing ``TimeoutError`` when it takes longer than `timeout`; `body` must end when cancelled.
func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimeoutError(what: "\(timeout)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

extension RecordingStream {
    /// The response head, or nil when the stream closed without one.
    func firstResponse() async -> HTTPResponse? {
        let bound = self.bound()
        defer { bound.cancel() }
        for await event in self.events {
            if case .response(let response) = event { return response }
        }
        return nil
    }
}
