import FleetAgent
import FleetGate
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Testing

@Suite("Central capacity", .timeLimit(.minutes(2)))
struct CentralTests {
    /// A gateway with no car and one central endpoint in eu-west whose models are discovered, and a client.
    func withCentralOnly(_ body: (FleetFixture, CentralServer, RecordingClient) async throws -> Void) async throws {
        let central = try await CentralServer.start()
        defer { central.channel.close(promise: nil) }
        try await withFleet(configure: { $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)] }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            try await body(fleet, central, client)
        }
    }

    @Test("With no car in the zone, central capacity in the zone serves, streamed and not, with route headers")
    func fallback() async throws {
        try await withCentralOnly { fleet, central, client in
            let streamed = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 6))
                .collect()
            #expect(streamed.response?.status == .ok)
            #expect(streamed.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "central")
            #expect(streamed.response?.headerFields[HTTPField.Name("x-fleet-region")!] == "eu-west")
            #expect(streamed.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == nil)
            let decoded = try chunks(try ssePayloads(streamed.body))
            #expect(decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == 6)
            let whole = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 4))
                .collect()
            let completion = try JSONDecoder().decode(CompletionResponse.self, from: Data(whole.body.utf8))
            #expect(completion.usage.completionTokens == 4)
            #expect(central.engine.tokensGenerated == 10)
        }
    }

    @Test("Central receives every field the client sent, byte for byte, with stream and usage set")
    func fieldsPassThrough() async throws {
        try await withCentralOnly { fleet, central, client in
            let fields: [(String, String)] = [
                ("model", "\"fleet-8b\""), ("messages", "[{\"role\":\"user\",\"content\":\"hi\"}]"),
                ("n", "1"), ("tools", "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]"),
                ("tool_choice", "\"none\""), ("response_format", "{\"type\":\"text\"}"), ("logprobs", "false"),
                ("top_logprobs", "0"), ("top_p", "0.30000000000000004"), ("stop", "[\"zzz\"]"), ("seed", "42"),
                ("temperature", "0.7"), ("presence_penalty", "0.5"), ("frequency_penalty", "-0.25"),
                ("user", "\"u-1\""), ("max_tokens", "3"), ("metadata", "{\"k\":\"v\"}"),
            ]
            let body = "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + ",\"stream\":false}"
            let result = try await client.post("/v1/chat/completions", json: body).collect()
            #expect(result.response?.status == .ok)
            let received = try #require(central.recorder.requests.last { $0.path.hasSuffix("/chat/completions") })
            let text = String(buffer: received.body)
            for (name, value) in fields {
                #expect(text.contains("\"\(name)\":\(value)"), "central did not receive \(name) as sent")
            }
            #expect(text.contains("\"stream\":true"))
            #expect(text.contains("\"stream_options\":{\"include_usage\":true}"))
            #expect(!text.contains("\"stream\":false"))
        }
    }

    /// Issue #19: one failed central request marked the endpoint unhealthy until the next 15 s
    /// refresh, and after a restart its models stayed unknown as long; the zone got 503 meanwhile.
    @Test("A central restart: one failure does not take it out, and its models are back within seconds")
    func restart() async throws {
        var central = try await CentralServer.start()
        let port = central.channel.localAddress!.port!
        let baseURL = central.baseURL
        try await withFleet(configure: { $0.central.endpoints = [.init(region: "eu-west", baseURL: baseURL)] }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            // Down: the request fails (nothing listens), once. As below: first let the pool see its
            // keep-alive connection (the model discovery's) close, or under load the request can
            // land on it as it closes and wait out the first-token deadline (15 s) — a race this
            // test is not about, which also let the 15 s refresh run while central was down.
            await central.stop()
            try await Task.sleep(for: .milliseconds(300))
            let failed = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2))
                .collect()
            #expect(failed.response?.status.code != 200)
            #expect(fleet.gateway.core.central.models().contains("fleet-8b"), "one failure took the endpoint out")
            // Back on the same port: served at once, with no refresh in between.
            central = try await CentralServer.start(port: port)
            let served = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2))
                .collect()
            #expect(served.response?.status == .ok)
            #expect(served.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "central")
            // Down for good: three failures in a row take it out; back, it is probed within seconds.
            await central.stop()
            // Let the pool see its keep-alive connection close: a request written onto a connection
            // the server is closing at that instant is caught by the first-token deadline (15 s), a
            // race this test is not about.
            try await Task.sleep(for: .milliseconds(300))
            for _ in 0..<CentralDirectory.failuresToEject {
                _ = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2)).collect()
            }
            #expect(!fleet.gateway.core.central.models().contains("fleet-8b"))
            central = try await CentralServer.start(port: port)
            try await waitUntil(timeout: .seconds(5), "central probed back in") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let again = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2))
                .collect()
            #expect(again.response?.status == .ok)
        }
        await central.stop()
    }

    @Test("A car in the zone is preferred to central capacity")
    func carsFirst() async throws {
        let central = try await CentralServer.start()
        defer { central.channel.close(promise: nil) }
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: { $0.central.endpoints = [.init(region: "eu-central", baseURL: central.baseURL)] }
        ) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3))
                .collect()
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "car")
            #expect(central.engine.tokensGenerated == 0)
        }
    }

    @Test("Central capacity outside the zone never serves: 503 no_capacity_in_zone, and it generated nothing")
    func neverLeaks() async throws {
        let central = try await CentralServer.start()
        defer { central.channel.close(promise: nil) }
        try await withFleet(configure: { $0.central.endpoints = [.init(region: "us-east", baseURL: central.baseURL)] }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true)).collect()
            #expect(result.response?.status.code == 503)
            #expect(result.body.contains("no_capacity_in_zone"))
            #expect(central.engine.tokensGenerated == 0)
        }
    }

    @Test("A central endpoint in an unknown region is a configuration error naming it")
    func unknownRegion() {
        var config = GatewayConfiguration(fleetSecret: FleetFixture.testSecret)
        config.tunnel.auth = .token
        config.central.endpoints = [.init(region: "atlantis", baseURL: "http://127.0.0.1:1/v1")]
        #expect {
            _ = try Gateway(
                configuration: config, group: .singletonMultiThreadedEventLoopGroup, logger: .init(label: "t"))
        } throws: {
            "\($0)".contains("atlantis") && "\($0)".contains("central")
        }
    }

    @Test("The app's traceparent reaches central as a child span of the same trace, with its tracestate")
    func traceContext() async throws {
        try await withCentralOnly { _, central, client in
            let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3),
                headers: [HTTPField.Name("traceparent")!: sent, HTTPField.Name("tracestate")!: "app=1"]
            ).collect()
            #expect(result.response?.status == .ok)
            let received = try #require(central.recorder.requests.last { $0.path.hasSuffix("/chat/completions") })
            let forwarded = try #require(received.headers[HTTPField.Name("traceparent")!].flatMap(TraceParent.init))
            #expect(forwarded.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
            #expect(forwarded.parentID != "00f067aa0ba902b7")
            #expect(received.headers[HTTPField.Name("tracestate")!] == "app=1")
        }
    }

    /// Issue #19: the central path's own HTTP/1.1 client keeps its connections alive on the relay's
    /// loop; one central closed while it was parked is not written to again.
    @Test("Central streams reuse kept-alive connections, carry the request id, and outlive central closing idle ones")
    func keepAlive() async throws {
        try await withCentralOnly { _, central, client in
            func post(_ id: String, stream: Bool) async throws {
                let result = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: stream, maxTokens: 2),
                    headers: [HTTPField.Name("x-request-id")!: id]
                ).collect()
                #expect(result.response?.status == .ok, "\(id)")
            }
            try await post("keep-0", stream: true)
            let accepted = central.acceptedConnections
            for (i, stream) in [false, true, false].enumerated() { try await post("keep-\(i + 1)", stream: stream) }
            #expect(central.acceptedConnections == accepted, "a request after another opened a connection")
            let ids = central.recorder.requests.filter { $0.path.hasSuffix("/chat/completions") }
                .map { $0.headers[HTTPField.Name("x-request-id")!] }
            #expect(ids == ["keep-0", "keep-1", "keep-2", "keep-3"])
            // Central closes its idle connections (its keep-alive timeout): the next requests are served.
            await central.closeConnections()
            for i in 4..<7 { try await post("keep-\(i)", stream: i % 2 == 0) }
            #expect(central.acceptedConnections > accepted)
        }
    }

    /// Issue #19: an `https://` central endpoint goes through the gateway's own client with TLS in its
    /// pipeline (swift-nio-ssl), its private CA trusted by `central.caFile`.
    @Test("An https central endpoint with a private CA serves, streamed and not, on kept-alive TLS connections")
    func https() async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        tls.applicationProtocols = ["h2", "http/1.1"]
        let central = try await CentralServer.start(tls: try NIOSSLContext(configuration: tls))
        defer { central.channel.close(promise: nil) }
        #expect(central.baseURL.hasPrefix("https://"))
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)]
            $0.central.caFile = cert
        }) { fleet in
            try await waitUntil("central models discovered over TLS") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let streamed = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5))
                .collect()
            #expect(streamed.response?.status == .ok)
            #expect(streamed.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "central")
            let tokens = try chunks(try ssePayloads(streamed.body)).flatMap(\.choices).compactMap { $0.delta?.content }
            #expect(tokens.filter { !$0.isEmpty }.count == 5)
            let accepted = central.acceptedConnections
            let whole = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 3))
                .collect()
            #expect(whole.response?.status == .ok)
            let completion = try JSONDecoder().decode(CompletionResponse.self, from: Data(whole.body.utf8))
            #expect(completion.usage.completionTokens == 3)
            #expect(central.acceptedConnections == accepted, "the second request opened a TLS connection")
        }
    }

    @Test("central.caFile that is not PEM is a configuration error naming the key")
    func badCAFile() {
        var config = GatewayConfiguration(fleetSecret: FleetFixture.testSecret)
        config.tunnel.auth = .token
        config.central.endpoints = [.init(region: "eu-west", baseURL: "https://central.example/v1")]
        config.central.caFile = "/nonexistent/ca.pem"
        #expect {
            _ = try Gateway(
                configuration: config, group: .singletonMultiThreadedEventLoopGroup, logger: .init(label: "t"))
        } throws: {
            "\($0)".contains("central.caFile")
        }
    }
}
