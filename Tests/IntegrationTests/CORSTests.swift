import FleetGate
import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Testing

/// A browser page on another origin calls the API (`auth.corsOrigins`): real headless Chromium
/// running `fetch` with a bearer key and a streamed completion, and the preflight over h2.
@Suite("Browsers: CORS", .timeLimit(.minutes(2)))
struct CORSTests {
    /// Serves the page that calls the gateway: the client port in its query, the result in its DOM.
    struct PageResponder: HTTPServerResponder {
        static let page = """
            <!doctype html><html><body><pre id="out">pending</pre><script>
            const port = new URLSearchParams(location.search).get('port');
            const out = document.getElementById('out');
            fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
              method: 'POST',
              headers: {'Authorization': 'Bearer sk-test', 'Content-Type': 'application/json'},
              body: JSON.stringify({model: 'fleet-8b', stream: true, max_tokens: 8,
                                    messages: [{role: 'user', content: 'Hello, fleet'}]})
            }).then(async r => {
              const text = await r.text();
              out.setAttribute('data-status', r.status);
              out.setAttribute('data-request-id', r.headers.get('x-request-id') || 'unreadable');
              out.setAttribute('data-done', text.includes('data: [DONE]'));
              out.textContent = 'answered';
            }).catch(e => { out.setAttribute('data-error', e.name); out.textContent = 'failed'; });
            </script></body></html>
            """

        func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
            -> any HTTPStreamDelegate
        {
            FixedResponseDelegate(
                stream: stream, status: .ok, body: ByteBuffer(string: Self.page), contentType: "text/html")
        }
    }

    @Test("An allowed page streams a completion and reads x-request-id; another origin is refused by the browser")
    func browser() async throws {
        guard let chromium = DashboardTests.chromium else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("chromium is not installed") }
            return
        }
        let pages = try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, responder: PageResponder())
        defer { pages.close(promise: nil) }
        let pagePort = pages.localAddress!.port!
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-cors-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: {
                $0.auth.apiKeys = ["sk-test"]
                $0.auth.corsOrigins = ["http://127.0.0.1:\(pagePort)"]
            }
        ) { fleet in
            func run(_ host: String) async throws -> String {
                let result = try await Subprocess.run(
                    chromium,
                    [
                        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                        "--virtual-time-budget=5000", "--dump-dom",
                        "http://\(host):\(pagePort)/?port=\(fleet.clientPort)",
                    ], timeout: 60)
                #expect(result.status == 0, "chromium: \(result.stderr.suffix(500))")
                return result.stdout
            }
            let allowed = try await run("127.0.0.1")
            #expect(allowed.contains(#"data-status="200""#), "\(allowed.suffix(600))")
            #expect(allowed.contains(#"data-done="true""#))
            #expect(!allowed.contains("data-request-id=\"unreadable\"") && allowed.contains("data-request-id="))
            // `localhost` is another origin, not in auth.corsOrigins: the browser keeps the answer from the page.
            let refused = try await run("localhost")
            #expect(refused.contains(#"data-error="TypeError""#), "\(refused.suffix(600))")
        }
    }

    @Test("The preflight of an allowed origin names the methods and the headers asked; others get no CORS field")
    func preflight() async throws {
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: {
                $0.auth.apiKeys = ["sk-test"]
                $0.auth.corsOrigins = ["https://app.example.com"]
            }
        ) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func options(origin: String) async throws -> HTTPResponse? {
                var request = HTTPRequest(
                    method: .options, scheme: "http", authority: "127.0.0.1", path: "/v1/chat/completions")
                request.headerFields[.origin] = origin
                request.headerFields[.accessControlRequestMethod] = "POST"
                request.headerFields[.accessControlRequestHeaders] = "authorization,content-type,x-stainless-os"
                return try await client.send(request, body: nil).collect().response
            }
            let allowed = try await options(origin: "https://APP.example.com")
            #expect(allowed?.status == .ok)
            #expect(allowed?.headerFields[.accessControlAllowOrigin] == "https://APP.example.com")
            #expect(allowed?.headerFields[.accessControlAllowHeaders] == "authorization,content-type,x-stainless-os")
            #expect(allowed?.headerFields[.accessControlAllowMethods]?.contains("POST") == true)
            #expect(allowed?.headerFields[.vary] == "Origin")
            let other = try await options(origin: "https://evil.example")
            #expect(other?.status == .methodNotAllowed)
            #expect(other?.headerFields[.accessControlAllowOrigin] == nil)

            // A 401 to an allowed page carries the fields too, so the page can read why.
            var headers = HTTPFields()
            headers[.origin] = "https://app.example.com"
            let unauthorized = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true), headers: headers
            ).collect()
            #expect(unauthorized.response?.status == .unauthorized)
            #expect(unauthorized.response?.headerFields[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(unauthorized.response?.headerFields[.accessControlExposeHeaders]?.contains("x-request-id") == true)
        }
    }
}
