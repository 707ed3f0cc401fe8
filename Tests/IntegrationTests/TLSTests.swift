import FleetAgent
import FleetGate
import FleetHTTP2
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Testing

@Suite("TLS with ALPN on the client port", .timeLimit(.minutes(2)))
struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 made with the openssl CLI.
    /// Whether curl, trusting only `ca`, completes a TLS request to the gateway's TLS port `port`.
    static func verifies(port: Int, with ca: String) async throws -> Bool {
        try await Subprocess.run(
            "curl", ["-sS", "-o", "/dev/null", "--cacert", ca, "https://127.0.0.1:\(port)/v1/models"]
        ).status == 0
    }

    static func makeCertificate(days: Int = 1) async throws -> (cert: String, key: String, dir: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let result = try await Subprocess.run(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", String(days),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
            ])
        try #require(result.status == 0, "\(result.stderr)")
        return (cert, key, dir)
    }

    @Test("curl negotiates h2 and http/1.1 over TLS and streams SSE on both", arguments: ["--http2", "--http1.1"])
    func alpn(flag: String) async throws {
        let (cert, key, dir) = try await Self.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: {
                $0.tls = .init(certificateChain: cert, privateKey: key)
                $0.tlsPort = 0
            }
        ) { fleet in
            let port = try await #require(fleet.gateway.tlsListener).boundAddress.get().port!
            let result = try await Subprocess.run(
                "curl",
                [
                    "-sS", "-N", flag, "--cacert", cert, "-w", "\n%{http_version}",
                    "https://127.0.0.1:\(port)/v1/chat/completions",
                    "-H", "content-type: application/json", "-d", chatBody(stream: true, maxTokens: 5),
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasSuffix(flag == "--http2" ? "\n2" : "\n1.1"))
            #expect(result.stdout.contains("data: [DONE]"))
        }
    }

    @Test("A missing key file is a configuration error naming the key and the path")
    func badKeyFile() {
        var config = GatewayConfiguration(fleetSecret: FleetFixture.testSecret)
        config.tunnel.auth = .token
        config.tls = .init(certificateChain: "/nonexistent/cert.pem", privateKey: "/nonexistent/key.pem")
        #expect {
            _ = try Gateway(
                configuration: config, group: .singletonMultiThreadedEventLoopGroup, logger: .init(label: "t"))
        } throws: { error in
            "\(error)".contains("tls.certificateChain") && "\(error)".contains("/nonexistent/cert.pem")
        }
    }
}

@Suite("TLS on the car tunnel", .timeLimit(.minutes(2)))
struct TunnelTLSTests {
    @Test("A car dials the tunnel over TLS (ALPN h2), is verified against the CA, and serves")
    func tunnelOverTLS() async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withFleet(configure: { $0.tunnelTLS = .init(certificateChain: cert, privateKey: key) }) { fleet in
            var spec = CarSpec("tls-car", slowdown: 0.1)
            spec.tls = .init(caFile: cert, serverHostname: nil)
            let car = try await fleet.startCar(spec)
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4))
                .collect()
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-vehicle")!] == car.pseudonym)
            #expect(car.engine.tokensGenerated == 4)
        }
    }

    @Test("A cleartext car cannot join a TLS tunnel port")
    func cleartextRefused() async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withFleet(configure: { $0.tunnelTLS = .init(certificateChain: cert, privateKey: key) }) { fleet in
            await #expect(throws: TimeoutError.self) {
                try await fleet.startCar(CarSpec("plain-car", slowdown: 0.1), timeout: .seconds(1))
            }
            #expect(fleet.gateway.core.registry.count == 0)
        }
    }
}
