import FleetHTTP1Client
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// The base URLs the HTTP/1.1 client takes, and the request head it builds — no sockets.
@Suite("HTTP/1.1 endpoint")
struct HTTP1EndpointTests {
    @Test("Host, port, prefix and Host header from a base URL; an IP literal is not resolved", .timeLimit(.minutes(1)))
    func parse() throws {
        let plain = try HTTP1Endpoint(baseURL: "http://10.0.0.5:8000/v1", connectTimeout: .seconds(1))
        #expect(plain.host == "10.0.0.5" && plain.port == 8000 && plain.pathPrefix == "/v1")
        #expect(plain.authority == "10.0.0.5:8000" && plain.address != nil)
        let named = try HTTP1Endpoint(baseURL: "http://central.internal", connectTimeout: .seconds(1))
        #expect(named.host == "central.internal" && named.port == 80 && named.pathPrefix == "")
        #expect(named.address == nil)
        let v6 = try HTTP1Endpoint(baseURL: "http://[::1]:9000/api/v1", connectTimeout: .seconds(1))
        #expect(v6.host == "::1" && v6.port == 9000 && v6.pathPrefix == "/api/v1" && v6.authority == "[::1]:9000")
        let v6Default = try HTTP1Endpoint(baseURL: "http://[::1]/v1", connectTimeout: .seconds(1))
        #expect(v6Default.host == "::1" && v6Default.port == 80)
    }

    @Test("https:// with a TLS context: port 443 by default; without one it is refused", .timeLimit(.minutes(1)))
    func https() throws {
        let context = try NIOSSLContext(configuration: .makeClientConfiguration())
        let named = try HTTP1Endpoint(baseURL: "https://api.example.com/v1", connectTimeout: .seconds(1), tls: context)
        #expect(named.host == "api.example.com" && named.port == 443 && named.tls != nil && named.address == nil)
        let port = try HTTP1Endpoint(baseURL: "https://10.0.0.5:8443", connectTimeout: .seconds(1), tls: context)
        #expect(port.port == 8443 && port.address != nil)
        let plain = try HTTP1Endpoint(baseURL: "http://10.0.0.5", connectTimeout: .seconds(1), tls: context)
        #expect(plain.tls == nil && plain.port == 80)
        #expect(throws: HTTP1Endpoint.Unsupported.self) {
            try HTTP1Endpoint(baseURL: "https://api.example.com/v1", connectTimeout: .seconds(1))
        }
    }

    @Test("Not plain http://host[:port]: https, a bad port, no host, credentials", .timeLimit(.minutes(1)))
    func unsupported() {
        for url in [
            "https://api.example.com/v1", "http://host:0/v1", "http://host:70000", "http://host:x/v1", "http:///v1",
            "http://user:pw@host/v1", "ftp://host/v1", "",
        ] {
            #expect(throws: HTTP1Endpoint.Unsupported.self, "\(url)") {
                try HTTP1Endpoint(baseURL: url, connectTimeout: .seconds(1))
            }
        }
    }

    @Test("The POST head: prefix and path, Host, JSON in, SSE out, length, then the caller's headers", .timeLimit(.minutes(1)))
    func head() throws {
        let endpoint = try HTTP1Endpoint(baseURL: "http://127.0.0.1:8000/v1", connectTimeout: .seconds(1))
        let head = endpoint.postHead(
            path: "/chat/completions", contentLength: 42, headers: [("x-request-id", "r-1"), ("traceparent", "00-ab")])
        #expect(head.method == .POST && head.uri == "/v1/chat/completions" && head.version == .http1_1)
        #expect(head.headers.map { "\($0.name): \($0.value)" } == [
            "host: 127.0.0.1:8000", "content-type: application/json", "accept: text/event-stream",
            "content-length: 42", "x-request-id: r-1", "traceparent: 00-ab",
        ])
        #expect(head.isKeepAlive)
        // A request for one JSON answer (`stream: false`) asks for JSON, in the same place.
        let whole = endpoint.postHead(path: "/completions", contentLength: 7, accept: "application/json")
        #expect(whole.headers.map { "\($0.name): \($0.value)" } == [
            "host: 127.0.0.1:8000", "content-type: application/json", "accept: application/json", "content-length: 7",
        ])
    }
}
