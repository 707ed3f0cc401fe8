import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Errors in OpenAI's shape", .timeLimit(.minutes(2)))
struct ErrorTests {
    static let cases: [(String, String, [String: String], Int, String)] = [
        ("malformed JSON", "{\"model\": ", [:], 400, "invalid_request"),
        ("wrong field type", "{\"model\":\"fleet-8b\",\"messages\":\"hi\"}", [:], 400, "invalid_request"),
        ("missing messages", "{\"model\":\"fleet-8b\"}", [:], 400, "invalid_request"),
        (
            "max_completion_tokens out of range",
            "{\"model\":\"fleet-8b\",\"max_completion_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            [:], 400, "invalid_request"
        ),
        ("unknown model", chatBody(model: "gpt-9", stream: true), [:], 404, "model_not_found"),
        // OpenAI refuses these; they were served (helper-56), an image answered as if it were absent.
        (
            "temperature out of range",
            "{\"model\":\"fleet-8b\",\"temperature\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            [:], 400, "invalid_request"
        ),
        // The decoder keeps the first of two names, an upstream may act on the last (helper-58).
        (
            "a member written twice in a message",
            "{\"model\":\"fleet-8b\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"role\":\"wizard\"}]}",
            [:], 400, "invalid_request"
        ),
        (
            "an image part",
            "{\"model\":\"fleet-8b\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}}]}]}",
            [:], 400, "invalid_request"
        ),
        // The gateway checks one `model` and a Python runtime serves the other (helper-56).
        (
            "a member written twice",
            "{\"model\":\"fleet-8b\",\"model\":\"premium-70b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            [:], 400, "invalid_request"
        ),
        (
            "a member written twice, once escaped",
            "{\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"fleet-8b\",\"max_\\u0074okens\":40}",
            [:], 400, "invalid_request"
        ),
        ("missing API key", chatBody(stream: true), ["authorization": ""], 401, "invalid_api_key"),
        ("wrong API key", chatBody(stream: true), ["authorization": "Bearer nope"], 401, "invalid_api_key"),
        (
            "residency outside the origin's zone", chatBody(stream: true), ["x-fleet-residency": "us"], 400,
            "invalid_request"
        ),
    ]

    @Test("Bad requests get the right status and error code", arguments: cases)
    func badRequest(_ name: String, _ body: String, _ headers: [String: String], _ status: Int, _ code: String)
        async throws
    {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)], configure: { $0.apiKeys = ["sk-test"] }) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var fields = HTTPFields()
            fields[.authorization] = "Bearer sk-test"
            for (k, v) in headers { fields[HTTPField.Name(k)!] = v.isEmpty ? nil : v }
            let result = try await client.post("/v1/chat/completions", json: body, headers: fields).collect()
            #expect(result.response?.status.code == status, "\(name)")
            let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(result.body.utf8))
            #expect(error.error.code == code, "\(name)")
            #expect(!error.error.message.isEmpty)
            // The field the client sent, not its older twin (a compatibility diff, session 18).
            if body.contains("max_completion_tokens") { #expect(error.error.param == "max_completion_tokens") }
            if name == "temperature out of range" { #expect(error.error.param == "temperature") }
            if name == "an image part" { #expect(error.error.param == "messages[0].content[0]") }
            if name.hasPrefix("a member written twice") {
                #expect(error.error.message.contains("more than once"), "\(error.error.message)")
                #expect(
                    error.error.param == "model" || error.error.param == "max_tokens" || error.error.param == "role")
            }
        }
    }

    /// A request refused on its head (no route, wrong method, no key) has its line too, with the
    /// request id the client got: an operator looking up a client's 401 finds it (session 37).
    @Test("Requests refused on their head get a Request served line with error.type and their request id")
    func headRefusalsLogged() async throws {
        let log = CapturedLog()
        try await withFleet(configure: { $0.apiKeys = ["sk-test"] }, log: log) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let cases: [(method: HTTPRequest.Method, path: String, key: Bool, status: Int, code: String)] = [
                (.post, "/v1/chat/completions", false, 401, "invalid_api_key"),
                (.get, "/v1/chat/completions", true, 405, "method_not_allowed"),
                (.post, "/v2/nothing", true, 404, "not_found"),
            ]
            for (i, c) in cases.enumerated() {
                var fields = HTTPFields()
                if c.key { fields[.authorization] = "Bearer sk-test" }
                fields[HTTPField.Name("x-request-id")!] = "head-refusal-\(i)"
                var request = HTTPRequest(method: c.method, scheme: "http", authority: "127.0.0.1", path: c.path)
                request.headerFields = fields
                let body = c.method == .post ? ByteBuffer(string: chatBody(stream: false)) : nil
                let result = try await client.send(request, body: body).collect()
                #expect(result.response?.status.code == c.status, "\(c)")
                #expect(result.body.contains("\"\(c.code)\""), "\(c): \(result.body)")
                let lines = log.matching("Request served").filter {
                    $0.metadata["fleet.request.id"] == "head-refusal-\(i)"
                }
                try #require(lines.count == 1, "\(c)")
                #expect(lines[0].metadata["fleet.status"] == "\(c.status)")
                #expect(lines[0].metadata["error.type"] == "\(c.code)")
                #expect(lines[0].metadata["trace_id"]?.description.count == 32)
            }
        }
    }

    /// helper-122: a 900 KB prompt prefilled for minutes on three cars in turn, and the app saw nothing.
    @Test("A prompt over the car model's context gets 400 context_length_exceeded at once; the cars serve on")
    func overContext() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1), CarSpec("car-b", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // ~37,500 tokens at the gateway's 4 bytes a token: over the 8B's 32,768.
            let prompt = String(repeating: "word ", count: 30_000)
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2, prompt: prompt)
            ).collect()
            #expect(result.response?.status.code == 400)
            #expect(result.body.contains(#""code":"context_length_exceeded""#), "\(result.body)")
            #expect(result.body.contains(#""param":"messages""#) && result.body.contains("32768 tokens"))
            // The refusal is the request's, not the cars' fault: both still take work.
            for _ in 0..<2 {
                let next = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2)
                ).collect()
                #expect(next.response?.status == .ok)
            }
        }
    }

    /// Note 44: cars did not say their context window, so a prompt that only some cars hold was sent
    /// to any car, refused, tried once more and then refused to the app though a larger car was free.
    @Test("A prompt over one car's window goes to the car that holds it; on /v1/responses a refusal names input")
    func routedByWindow() async throws {
        try await withFleet { fleet in
            var small = HardwareProfile.of(.ai5)
            small.contextTokens = 4_096
            _ = try await fleet.startCar(
                "car-small", hardware: .ai5, engine: SyntheticEngine(profile: small, slowdown: 0.1))
            var one = HardwareProfile.of(.ai5)
            one.slots = 1
            let large = try await fleet.startCar(
                "car-large", hardware: .ai5, engine: SyntheticEngine(profile: one, slowdown: 0.1))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // What each car said, for an operator (helper-125: seen only by sending a long prompt).
            let admin = try await RecordingClient.connect(port: fleet.adminPort)
            defer { admin.close() }
            let cars = try await admin.send(
                HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/admin/cars"), body: nil
            ).collect().body
            #expect(cars.contains(#""contextTokens":4096"#) && cars.contains(#""contextTokens":32768"#), "\(cars)")
            // ~10,000 tokens (4 bytes a token): over the small car's 4,096, inside the large one's 32,768.
            let prompt = String(repeating: "word ", count: 8_000)
            for _ in 0..<4 {
                let result = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2, prompt: prompt)
                ).collect()
                #expect(result.response?.status == .ok, "\(result.body)")
                #expect(result.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == large)
                // Sent there first: not refused by the small car and tried again.
                #expect(result.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "1")
            }
            // Over both: the cars' own 400, with the Responses API's field name.
            let longer = String(repeating: "word ", count: 30_000)
            let body = #"{"model":"fleet-8b","max_output_tokens":16,"input":"\#(longer)"}"#
            let refused = try await client.post("/v1/responses", json: body).collect()
            #expect(refused.response?.status.code == 400)
            #expect(refused.body.contains(#""code":"context_length_exceeded""#), "\(refused.body)")
            #expect(refused.body.contains(#""param":"input""#), "\(refused.body)")
            // The largest window's refusal (tried first), in the Responses API's words (helper-125).
            #expect(refused.body.contains("32768 tokens") && !refused.body.contains("messages"), "\(refused.body)")
            // Which car refused, for an operator (helper-125: no vehicle on a rejection, nor in its audit line).
            #expect(refused.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == large)
            #expect(refused.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
            // The large car busy: the small one is free, so the zone is not "every car busy".
            let holder = try await RecordingClient.connect(port: fleet.clientPort)
            defer { holder.close() }
            let hold = try await holder.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5_000))
            _ = await hold.firstResponse()
            let busy = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2, prompt: prompt)
            ).collect()
            #expect(busy.response?.status.code == 503, "\(busy.body)")
            #expect(busy.body.contains("whose context window holds this request"), "\(busy.body)")
        }
    }

    /// helper-126: the large car refused a prompt over every window while the small one was busy, and the
    /// busy small car made it a 503 to retry for ever (it could never hold the prompt).
    @Test("A prompt over every window, the small car busy: the large car's 400, not a 503 to retry")
    func overEveryWindowSmallBusy() async throws {
        try await withFleet { fleet in
            var small = HardwareProfile.of(.ai5)
            small.contextTokens = 4_096
            small.slots = 1
            _ = try await fleet.startCar(
                "car-small", hardware: .ai5, engine: SyntheticEngine(profile: small, slowdown: 0.1))
            let holder = try await RecordingClient.connect(port: fleet.clientPort)
            defer { holder.close() }
            // Inside its window (3,000 tokens at 500 a second): held for the rest of the test.
            let hold = try await holder.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3_000))
            #expect(await hold.firstResponse()?.status == .ok)
            _ = try await fleet.startCar(
                "car-large", hardware: .ai5, engine: SyntheticEngine(profile: .of(.ai5), slowdown: 0.1))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let longer = String(repeating: "word ", count: 30_000)
            let refused = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2, prompt: longer)
            ).collect()
            #expect(refused.response?.status.code == 400, "\(refused.body)")
            #expect(refused.body.contains("context_length_exceeded") && refused.body.contains("32768 tokens"))
            #expect(refused.response?.headerFields[HTTPField.Name("x-fleet-attempts")!] == "1")
        }
    }

    @Test("A body over the limit gets 413 and the connection keeps serving")
    func oversizedBody() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)], configure: { $0.maxBodyBytes = 4096 }) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let big =
                "{\"model\":\"fleet-8b\",\"messages\":[{\"role\":\"user\",\"content\":\""
                + String(repeating: "a", count: 100_000) + "\"}]}"
            let result = try await client.post("/v1/chat/completions", json: big).collect()
            #expect(result.response?.status.code == 413)
            #expect(result.body.contains("request_too_large"))
            let next = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2))
                .collect()
            #expect(next.response?.status == .ok)
        }
    }

    /// The gateway's own bound is overload (503 with Retry-After, DESIGN.md's Contracts), not the
    /// client's rate (429 is for an application key's quota).
    @Test("Over the in-flight limit: 503 server_overloaded with Retry-After; the running stream is unaffected")
    func overLimit() async throws {
        try await withFleet(
            cars: [CarSpec("car-a", hardware: .ai5, slowdown: 1)], configure: { $0.maxInFlightRequests = 1 }
        ) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let first = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 20))
            try await waitUntil("first admitted") { fleet.gateway.core.requestsInFlight == 1 }
            let second = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2))
                .collect()
            #expect(second.response?.status.code == 503)
            #expect(second.body.contains("server_overloaded"))
            #expect(second.response?.headerFields[.retryAfter] == "1")
            let result = await first.collect()
            #expect(try ssePayloads(result.body).last == "[DONE]")
            try await waitUntil("released") { fleet.gateway.core.requestsInFlight == 0 }
        }
    }

    @Test("No car in the zone: 503 no_capacity_in_zone, even though a car elsewhere is free")
    func noCapacityInZone() async throws {
        try await withFleet(cars: [CarSpec("us-car", region: "us-east", slowdown: 0.1)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Loopback is the private origin: the default region eu-central, zone eu.
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true)).collect()
            #expect(result.response?.status.code == 503)
            #expect(result.body.contains("no_capacity_in_zone"))
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")
        }
    }

    @Test("Unknown paths get 404 JSON; GET /v1/models lists what cars serve")
    func modelsAndNotFound() async throws {
        try await withFleet(cars: [
            CarSpec("a", hardware: .hw3, slowdown: 0.1), CarSpec("b", hardware: .ai5, slowdown: 0.1),
        ]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let models = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/v1/models"), body: nil
            ).collect()
            let list = try JSONDecoder().decode(ModelList.self, from: Data(models.body.utf8))
            #expect(Set(list.data.map(\.id)) == ["fleet-3b", "fleet-8b"])
            // `client.models.retrieve`: a served model's object, or 404 model_not_found.
            let one = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/v1/models/fleet-8b"), body: nil
            ).collect()
            #expect(one.response?.status == .ok)
            #expect(try JSONDecoder().decode(ModelList.Model.self, from: Data(one.body.utf8)).id == "fleet-8b")
            let unserved = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/v1/models/gpt-9"), body: nil
            ).collect()
            #expect(unserved.response?.status == .notFound && unserved.body.contains("model_not_found"))
            let missing = try await client.send(
                HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/v2/nothing"), body: nil
            ).collect()
            #expect(missing.response?.status == .notFound)
            #expect(missing.body.contains("\"error\""))
            // Every answer carries a request id, as a completion's does.
            for answer in [models, one, unserved, missing] {
                #expect(answer.response?.headerFields[HTTPField.Name("x-request-id")!]?.isEmpty == false)
            }
        }
    }
}
