import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("Interop with real HTTP/2 peers", .timeLimit(.minutes(2)))
struct InteropTests {
    @Test("curl: h2 with prior knowledge and HTTP/1.1 on the same port")
    func curl() async throws {
        try await withTestServer { port in
            let h2 = try await Subprocess.run(
                "curl", ["-sS", "-w", "%{http_version}", "--http2-prior-knowledge", "http://127.0.0.1:\(port)/"])
            #expect(h2.stdout == "Hello, world\n2")
            let h1 = try await Subprocess.run(
                "curl", ["-sS", "-w", "%{http_version}", "--http1.1", "http://127.0.0.1:\(port)/"])
            #expect(h1.stdout == "Hello, world\n1.1")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-echo-\(UUID().uuidString)")
            try String(repeating: "z", count: 300_000).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let echo = try await Subprocess.run(
                "curl",
                ["-sS", "--http2-prior-knowledge", "--data-binary", "@\(file.path)", "http://127.0.0.1:\(port)/echo"])
            #expect(echo.stdout.count == 300_000)
            // `Expect: 100-continue`: told to go on at once over both (curl waited a second for it before), unless
            // the request is answered on its head (/refuse: 401 at once, and the body need not be sent).
            for version in ["--http2-prior-knowledge", "--http1.1"] {
                for (path, answer) in [("/", "Hello, world\n"), ("/refuse", #"{"error":"refused"}"#)] {
                    let result = try await Subprocess.run(
                        "curl",
                        [
                            "-sS", "-v", version, "-H", "Expect: 100-continue", "--data-binary", "@\(file.path)",
                            "http://127.0.0.1:\(port)\(path)",
                        ])
                    #expect(result.stdout == answer, "curl \(version) \(path): \(result.stderr.suffix(500))")
                    let continued = result.stderr.contains("< HTTP/1.1 100") || result.stderr.contains("< HTTP/2 100")
                    #expect(continued == (path == "/"), "curl \(version) \(path): \(result.stderr.prefix(1500))")
                }
            }
            // HEAD over both: the head alone (helper-127: HTTP/2 sent the body and curl reset the stream).
            for version in ["--http2-prior-knowledge", "--http1.1"] {
                let head = try await Subprocess.run(
                    "curl", ["-sS", "-I", "-w", "%{http_code}", version, "http://127.0.0.1:\(port)/"])
                #expect(head.status == 0, "curl -I \(version): \(head.stderr)")
                #expect(head.stdout.hasSuffix("200"), "curl -I \(version): \(head.stdout)")
            }
        }
    }

    @Test("curl and nghttp: a request refused on its head keeps the answer while its body is still sent")
    func refusedBeforeBody() async throws {
        try await withTestServer { port in
            // Beyond the 64 KiB stream window: the client is still sending when the 401 arrives.
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-body-\(UUID().uuidString)")
            try String(repeating: "z", count: 300_000).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            for version in ["--http2-prior-knowledge", "--http1.1"] {
                let result = try await Subprocess.run(
                    "curl",
                    [
                        "-sS", "-w", "%{http_code}", version, "--data-binary", "@\(file.path)",
                        "http://127.0.0.1:\(port)/refuse",
                    ])
                #expect(result.status == 0, "curl \(version): \(result.stderr)")
                #expect(result.stdout == #"{"error":"refused"}401"#, "curl \(version)")
            }
            let nghttp = try await Subprocess.run("nghttp", ["-s", "-d", file.path, "http://127.0.0.1:\(port)/refuse"])
            #expect(nghttp.status == 0, "\(nghttp.stderr)")
            #expect(
                nghttp.stdout.contains(#"{"error":"refused"}"#) && nghttp.stdout.contains(" 401 "), "\(nghttp.stdout)")
        }
    }

    @Test("nghttp fetches SSE events and a large body")
    func nghttp() async throws {
        try await withTestServer { port in
            let sse = try await Subprocess.run("nghttp", ["http://127.0.0.1:\(port)/sse?n=50"])
            #expect(sse.status == 0, "\(sse.stderr)")
            #expect(sse.stdout.components(separatedBy: "\n\n").count == 51)
            let bulk = try await Subprocess.run("nghttp", ["-s", "http://127.0.0.1:\(port)/stream?bytes=3000000"])
            #expect(bulk.status == 0)
            #expect(bulk.stdout.contains("200"))
        }
    }

    @Test("h2load: many streams on many connections, all succeed")
    func h2load() async throws {
        try await withTestServer { port in
            let result = try await Subprocess.run(
                "h2load", ["-n", "5000", "-c", "10", "-m", "10", "http://127.0.0.1:\(port)/"])
            #expect(result.stdout.contains("5000 succeeded, 0 failed, 0 errored"), "\(result.stdout)")
        }
    }

    @Test("Python h2 and httpx (HTTP/2) clients", arguments: ["h2", "httpx"])
    func python(client: String) async throws {
        let python = try #require(
            ProcessInfo.processInfo.environment["FLEETGATE_PYTHON"],
            "run via scripts/test.sh, which sets FLEETGATE_PYTHON")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Clients/\(client)_client.py"
        ).path
        try await withTestServer { port in
            let result = try await Subprocess.run(python, [script, "127.0.0.1", String(port)])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("ok"), "\(result.stdout)")
        }
    }

    @Test("Our client role against nghttpd")
    func clientAgainstNghttpd() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-nghttpd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let payload = String(repeating: "0123456789", count: 50_000)
        try payload.write(to: root.appendingPathComponent("big.txt"), atomically: true, encoding: .utf8)
        // A free port can be taken before nghttpd binds it (tests run in parallel; it failed twice on a
        // loaded machine): nghttpd then exits, and another port is tried.
        var server = Process()
        var connection: HTTP2ConnectionHandle?
        for _ in 0..<3 where connection == nil {
            let port = try freeLoopbackPort()
            server = Process()
            server.executableURL = URL(fileURLWithPath: try #require(Subprocess.which("nghttpd")))
            server.arguments = ["--no-tls", "-d", root.path, String(port)]
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try ChildLauncher.run(server)
            try await waitUntil(timeout: .seconds(20), "nghttpd listening or gone") {
                // Gone first: on a port another test took, the connection would reach that test's server.
                guard server.isRunning else { return true }
                connection = try? await HTTP2Client.connect(
                    host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)
                return connection != nil
            }
            if connection == nil { Subprocess.stop(server, grace: 1) }
        }
        defer { Subprocess.stop(server, grace: 1) }
        let client = RecordingClient(connection: try #require(connection))
        defer { client.close() }
        let request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/big.txt")
        let result = try await client.send(request, body: Optional<ByteBuffer>.none).collect()
        #expect(result.response?.status == .ok)
        #expect(result.body == payload)
        let rtt = try await client.connection.ping().get()
        #expect(rtt > .zero)
    }
}
