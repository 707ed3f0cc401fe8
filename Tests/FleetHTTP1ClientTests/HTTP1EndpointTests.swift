import FleetHTTP1Client
import NIOCore
import NIOEmbedded
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

    @Test(
        "The POST: prefix and path, Host, JSON in, SSE out, the caller's headers, then the length",
        .timeLimit(.minutes(1)))
    func post() throws {
        let endpoint = try HTTP1Endpoint(baseURL: "http://127.0.0.1:8000/v1", connectTimeout: .seconds(1))
        let request = endpoint.post(
            path: "/chat/completions", body: ByteBuffer(string: "{}"),
            headers: [("x-request-id", "r-1"), ("traceparent", "00-ab")])
        #expect(
            String(buffer: request.bytes) == "POST /v1/chat/completions HTTP/1.1\r\n"
                + "host: 127.0.0.1:8000\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n"
                + "x-request-id: r-1\r\ntraceparent: 00-ab\r\ncontent-length: 2\r\n\r\n{}")
        // A request for one JSON answer (`stream: false`) asks for JSON, in the same place.
        let whole = endpoint.post(path: "/completions", body: ByteBuffer(string: "1234567"), accept: "application/json")
        #expect(
            String(buffer: whole.bytes) == "POST /v1/completions HTTP/1.1\r\n"
                + "host: 127.0.0.1:8000\r\ncontent-type: application/json\r\naccept: application/json\r\n"
                + "content-length: 7\r\n\r\n1234567")
        // Each line NIO's parser reads back as the request sent: method, target, fields, body.
        let parsed = try Self.parse(request.bytes)
        #expect(parsed.head.method == .POST && parsed.head.uri == "/v1/chat/completions")
        #expect(parsed.head.headers["traceparent"] == ["00-ab"] && parsed.body == "{}")
    }

    @Test(
        "A field that could end a line early is left out; a prefix with a space or control byte is refused",
        .timeLimit(.minutes(1)))
    func smuggling() throws {
        let endpoint = try HTTP1Endpoint(baseURL: "http://127.0.0.1:8000/v1", connectTimeout: .seconds(1))
        let request = endpoint.post(
            path: "/chat/completions", body: ByteBuffer(string: "{}"),
            headers: [
                ("tracestate", "a=1\r\nx-admin: yes"), ("x-a", "b\nc"), ("x-nul", "a\u{0}"), ("bad name", "v"),
                ("", "v"), ("x-ok", "fine; q=\"1\""),
                // Framing and hop-by-hop fields are the request's own, in any case.
                ("Content-Length", "0"), ("transfer-encoding", "chunked"), ("Connection", "close"), ("HOST", "evil"),
                ("te", "trailers"), ("x-content-length", "kept"),
            ])
        #expect(request.omitted == 10)
        let parsed = try Self.parse(request.bytes)
        #expect(
            parsed.head.headers.map(\.name) == [
                "host", "content-type", "accept", "x-ok", "x-content-length", "content-length",
            ])
        #expect(parsed.head.headers["content-length"] == ["2"] && parsed.head.isKeepAlive && parsed.body == "{}")
        for url in [
            "http://127.0.0.1:8000/v1 HTTP/1.0", "http://127.0.0.1:8000/v1\r\nx: y", "http://h/a\u{7F}",
            "http://h\r\nx: y:80/v1", "http://h/caf\u{E9}",
        ] {
            #expect(throws: HTTP1Endpoint.Unsupported.self, "\(url)") {
                try HTTP1Endpoint(baseURL: url, connectTimeout: .seconds(1))
            }
        }
    }

    /// The request as NIO's server-side decoder reads it.
    private static func parse(_ bytes: ByteBuffer) throws -> (head: HTTPRequestHead, body: String) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.writeInbound(bytes)
        guard case .head(let head) = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            throw ChannelError.inappropriateOperationForState
        }
        var body = ""
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .body(let piece) = part { body += String(buffer: piece) }
        }
        _ = try channel.finish()
        return (head, body)
    }
}
