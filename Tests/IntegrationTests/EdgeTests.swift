import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Prometheus
import Testing

/// Issue #18: limits before work, and what a client can make the gateway write.
@Suite("Edge hardening", .timeLimit(.minutes(2)))
struct EdgeTests {
    /// `http_server_requests_total` for one route, summed over statuses, from `/metrics`.
    static func served(_ fleet: FleetFixture, route: String) -> Int {
        let text = String(decoding: fleet.gateway.prometheus.emitToBuffer(), as: UTF8.self)
        return text.split(separator: "\n").filter {
            $0.hasPrefix("http_server_requests_total") && $0.contains("http_route=\"\(route)\"")
        }.reduce(0) { $0 + (Int($1.split(separator: " ").last ?? "") ?? 0) }
    }

    @Test("Row 4: silent, partial-head, partial-preface and idle keep-alive connections are closed by timers")
    func slowloris() async throws {
        try await withFleet(configure: {
            $0.clientHTTP2.handshakeTimeout = .seconds(1)
            $0.clientHTTP2.http1HeaderTimeout = .seconds(1)
            $0.clientHTTP2.http1KeepAliveTimeout = .seconds(1)
        }) { fleet in
            let silent = try await RawConnection.connect(port: fleet.clientPort)
            let partialHead = try await RawConnection.connect(port: fleet.clientPort)
            try await partialHead.send(Array("GET /v1/models HTTP/1.1\r\nhost: x\r\nx-slow: ".utf8))
            let partialPreface = try await RawConnection.connect(port: fleet.clientPort)
            try await partialPreface.send(Array("PRI * HTTP/2.0\r\n".utf8))
            let keepAlive = try await RawConnection.connect(port: fleet.clientPort)
            try await keepAlive.send(Array("GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n".utf8))
            let clock = ContinuousClock()
            let start = clock.now
            for connection in [silent, partialHead, partialPreface, keepAlive] {
                try await connection.waitForClose()
            }
            #expect(clock.now - start < .seconds(5))
            #expect(String(decoding: keepAlive.received, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
    }

    /// helper-96: NIO's parser refusals were a bare `400` with no body; every other refusal is JSON.
    @Test(
        "HTTP/1.1 requests the parser refuses get an OpenAI-style JSON 400 or 431, then the connection closes",
        arguments: [
            (
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400,
                "chunk size"
            ),
            (
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 3\r\n\r\n", 400,
                "Content-Length"
            ),
            (
                "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: " + String(repeating: "a", count: 100_000) + "\r\n\r\n",
                431, "too large"
            ),
            ("GET /v1/models HTTP/1.1\r\nhost x\r\n\r\n", 400, "header"),
        ])
    func parserRefusals(request: String, status: Int, detail: String) async throws {
        try await withFleet { fleet in
            let connection = try await RawConnection.connect(port: fleet.clientPort)
            try await connection.send(Array(request.utf8))
            try await connection.waitForClose()
            let answer = String(decoding: connection.received, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(answer)")
            #expect(answer.lowercased().contains("content-type: application/json"), "\(answer)")
            let body = try #require(answer.range(of: "\r\n\r\n").map { answer[$0.upperBound...] })
            let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(body.utf8))
            #expect(error.error.type == "invalid_request_error")
            #expect(error.error.message.contains(detail), "\(error.error.message)")
        }
    }

    @Test("Row 4: a silent TLS connection is closed before its handshake")
    func silentTLS() async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withFleet(configure: {
            $0.tls = .init(certificateChain: cert, privateKey: key)
            $0.tlsPort = 0
            $0.clientHTTP2.handshakeTimeout = .seconds(1)
        }) { fleet in
            let port = try await #require(fleet.gateway.tlsListener).boundAddress.get().port!
            let silent = try await RawConnection.connect(port: port)
            let clock = ContinuousClock()
            let start = clock.now
            try await silent.waitForClose()
            #expect(clock.now - start < .seconds(4))
        }
    }

    @Test("Row 5: HTTP/1.1 pipelining without reading stops being served once the socket is full")
    func pipeliningWithoutReading() async throws {
        try await withFleet { fleet in
            // 200 long model names make each `/v1/models` answer ~16 KB, so the kernel's buffers
            // fill after about a hundred answers and the test costs little CPU.
            let models = (0..<200).map {
                ModelOffer(
                    id: "model-\($0)-" + String(repeating: "x", count: 60), decodeTokensPerSecond: 20,
                    prefillTokensPerSecond: 1_000)
            }
            _ = fleet.gateway.core.registry.register(
                CarDescriptor(
                    vehicleID: "catalogue", pseudonym: "p", region: "eu-central", zone: "eu", hardware: .hw4,
                    models: models, slots: 1, policy: OwnerPolicy()),
                state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1))
            // A client that never reads, with a small receive buffer.
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: fleet.clientPort).get()
            defer { channel.close(promise: nil) }
            let request = Array("GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n".utf8)
            let chunk = ByteBuffer(bytes: Array([[UInt8]](repeating: request, count: 10_000).joined()))
            // 60,000 requests (2 MB): served until the socket buffers fill (110 here), then no more;
            // on main, served on and on, their answers queued in memory.
            for _ in 0..<6 { channel.writeAndFlush(chunk, promise: nil) }
            // Serving must stop by itself: the count holds still for half a second.
            var samples: [Int] = []
            var stopped = false
            for _ in 0..<30 {
                try await Task.sleep(for: .milliseconds(250))
                samples.append(Self.served(fleet, route: "/v1/models"))
                if samples.count >= 3 && Set(samples.suffix(3)).count == 1 {
                    stopped = true
                    break
                }
            }
            #expect(stopped, "still serving after 7.5 s: \(samples)")
            #expect((samples.last ?? 0) < 5_000, "served \(samples.last ?? 0) of 60,000 pipelined requests nobody read")
        }
    }

    /// helper-65: an HTTP/1.1 client that never read held a car's slot — which went on generating —
    /// for as long as it kept the socket open; an HTTP/2 one is reset after the stall timeout.
    @Test("An HTTP/1.1 client that stops reading mid-stream is closed after the stall timeout, freeing the car's slot")
    func http1Stall() async throws {
        try await withFleet(
            cars: [CarSpec("fast-car", slowdown: 0.001)],
            configure: { $0.limits.clientHTTP2.stallTimeout = .seconds(1) }
        ) { fleet in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: fleet.clientPort).get()
            defer { channel.close(promise: nil) }
            // Long, and inside the 8B's 32,768-token context (a synthetic car refuses more at once).
            let body = chatBody(stream: true, maxTokens: 30_000)
            let request =
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + "content-length: \(body.utf8.count)\r\n\r\n" + body
            try await channel.writeAndFlush(ByteBuffer(string: request)).get()
            let busy = { fleet.gateway.core.registry.all().first?.inFlight ?? 0 }
            try await waitUntil(timeout: .seconds(5), "the car serves the stream") { busy() == 1 }
            // The client reads nothing: the gateway's socket fills, and after the stall time the
            // connection is closed and the job cancelled.
            try await waitUntil(timeout: .seconds(20), "the slot is freed") { busy() == 0 }
        }
    }

    @Test("Two agents with one vehicle id: each takeover of the open tunnel is counted")
    func takeovers() async throws {
        try await withFleet { fleet in
            try await fleet.startCar(CarSpec("twin", slowdown: 0.05))
            try await fleet.startCar(CarSpec("twin", slowdown: 0.05))
            try await waitUntil(timeout: .seconds(10), "the second tunnel took over the first") {
                let metrics = try await fleet.metrics()
                return metrics.split(separator: "\n").contains {
                    $0.hasPrefix("fleet_car_takeovers_total ") && !$0.hasSuffix(" 0") && !$0.hasSuffix(" 0.0")
                }
            }
        }
    }

    @Test("Row 11: an x-request-id that would forge log fields is replaced, a token is echoed")
    func requestID() async throws {
        try await withFleet(cars: [CarSpec("car", slowdown: 0.05)]) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            for (given, kept) in [("ok fleet.zone=us fleet.status=200", false), ("req-42.a:b_c", true)] {
                var headers = HTTPFields()
                headers[HTTPField.Name("x-request-id")!] = given
                let result = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2), headers: headers
                ).collect()
                let echoed = result.response?.headerFields[HTTPField.Name("x-request-id")!]
                #expect((echoed == given) == kept, "\(given) → \(echoed ?? "nil")")
                #expect(echoed.map { !$0.contains(" ") && !$0.contains("=") } == true)
            }
        }
    }

    @Test("Row 7: a car whose token expires while connected is drained and its tunnel closed")
    func tokenExpiry() async throws {
        try await withFleet { fleet in
            var spec = CarSpec("expiring", slowdown: 0.05)
            spec.tokenExpires = Date().addingTimeInterval(2)
            try await fleet.startCar(spec)
            try await waitUntil(timeout: .seconds(6), "the expired car is gone") {
                !fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "expiring" && !$0.draining }
            }
            // Its reconnects are refused at hello: the token has expired.
            try await Task.sleep(for: .milliseconds(500))
            #expect(
                !fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "expiring" && !$0.draining })
        }
    }
}

@Suite("Edge hardening: API keys and the admin port", .timeLimit(.minutes(2)))
struct EdgeAuthTests {
    @Test("Row 9: GET /v1/models needs a key when keys are configured")
    func modelsNeedKey() async throws {
        try await withFleet(cars: [CarSpec("car", slowdown: 0.05)], configure: { $0.apiKeys = ["sk-test-1"] }) {
            fleet in
            let url = "http://127.0.0.1:\(fleet.clientPort)/v1/models"
            let anonymous = try await Subprocess.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            #expect(anonymous.stdout == "401")
            let keyed = try await Subprocess.run(
                "curl", ["-s", "-H", "authorization: Bearer sk-test-1", url])
            #expect(keyed.stdout.contains("fleet-8b"))
        }
    }

    @Test("Row 10: the admin API checks Host, Origin, the token and JSON POSTs; probes stay open and read-only")
    func adminGuard() async throws {
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(UUID().uuidString)")
        try "admin-token-0123456789abcdef\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tokenFile) }
        try await withFleet(configure: {
            $0.adminTokenFile = tokenFile.path
            $0.probesHost = "127.0.0.1"
            $0.probesPort = 0
        }) { fleet in
            let base = "http://127.0.0.1:\(fleet.adminPort)"
            let auth = "authorization: Bearer admin-token-0123456789abcdef"
            var cases: [([String], String)] = [
                // DNS rebinding: a foreign Host, even with the token.
                (["-H", "host: attacker.example", "-H", auth, "\(base)/admin/regions"], "403"),
                // CSRF: a cross-site text/plain POST, and a same-host one without JSON.
                (
                    [
                        "-X", "POST", "-H", "origin: http://attacker.example", "-H", "content-type: text/plain", "-H",
                        auth, "\(base)/admin/regions/reload",
                    ], "403"
                ),
                (["-X", "POST", "-H", "content-type: text/plain", "-H", auth, "\(base)/admin/regions/reload"], "415"),
                // The token.
                (["\(base)/admin/regions"], "401"),
                (["-H", "authorization: Bearer wrong-token-0123456789", "\(base)/admin/regions"], "401"),
                (["-H", auth, "\(base)/admin/regions"], "200"),
                (
                    [
                        "-X", "POST", "-H", "content-type: application/json", "-H", auth, "-d", "{}",
                        "\(base)/admin/regions/reload",
                    ], "200"
                ),
                // A known path with the other method: 405, not 404.
                (["-H", auth, "\(base)/admin/reload"], "405"),
                (
                    [
                        "-X", "POST", "-H", "content-type: application/json", "-H", auth, "-d", "{}",
                        "\(base)/admin/cars",
                    ], "405"
                ),
                (["-I", "-H", auth, "\(base)/admin/config"], "200"),
                // Probes: no token, any Host, read-only.
                (["-H", "host: 10.1.2.3:9090", "\(base)/healthz"], "200"),
                (["\(base)/metrics"], "200"),
                (["-X", "POST", "\(base)/healthz"], "405"),
            ]
            // The probes listener (for a pod address) serves the probes and nothing else.
            let probes = try await #require(fleet.gateway.probesListener).boundAddress.get().port!
            cases += [
                (["http://127.0.0.1:\(probes)/readyz"], "200"),
                (["-H", auth, "http://127.0.0.1:\(probes)/admin/regions"], "404"),
            ]
            for (args, expected) in cases {
                let result = try await Subprocess.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + args)
                #expect(result.stdout == expected, "\(args)")
            }
        }
    }
}
