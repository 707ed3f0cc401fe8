import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import FleetHTTP2

/// helper-93: an HTTP/1.0 request got an HTTP/1.1 head and a chunked body, which an HTTP/1.0 client cannot read.
@Suite("HTTP/1.1 keep-alive and HTTP/1.0 framing")
struct HTTP1KeepAliveHandlerTests {
    /// What the connection writes for a request of `version` (with `headers`) answered by a head with
    /// `responseHeaders` and the body `body`, and whether it is still open after the response.
    static func respond(
        version: HTTPVersion, headers: HTTPHeaders = [:], responseHeaders: HTTPHeaders = [:], body: String = "data"
    ) throws -> (bytes: String, open: Bool) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
        try channel.pipeline.syncOperations.addHandler(HTTP1KeepAliveHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(
            HTTPServerRequestPart.head(HTTPRequestHead(version: version, method: .POST, uri: "/", headers: headers)))
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        // The HTTPTypes codec's head: always 1.1.
        try channel.writeOutbound(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: responseHeaders)))
        try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        var bytes = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += String(buffer: buffer) }
        return (bytes, channel.isActive)
    }

    @Test("A stream to an HTTP/1.0 client is an HTTP/1.0 response, not chunked, ended by closing the connection")
    func http10Stream() throws {
        for headers: HTTPHeaders in [[:], ["connection": "keep-alive"]] {
            let (bytes, open) = try Self.respond(version: .http1_0, headers: headers)
            #expect(bytes.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(bytes)")
            #expect(!bytes.lowercased().contains("transfer-encoding"), "\(bytes)")
            #expect(bytes.lowercased().contains("connection: close"))
            #expect(bytes.hasSuffix("\r\n\r\ndata"), "\(bytes)")
            #expect(!open)
        }
    }

    @Test(
        "An HTTP/1.0 keep-alive request answered with a length stays open; HTTP/1.1 streams are chunked and stay open")
    func framedAndHTTP11() throws {
        let framed = try Self.respond(
            version: .http1_0, headers: ["connection": "keep-alive"], responseHeaders: ["content-length": "4"])
        #expect(framed.bytes.hasPrefix("HTTP/1.0 200 OK\r\n") && framed.bytes.hasSuffix("\r\n\r\ndata"))
        #expect(!framed.bytes.lowercased().contains("connection: close"))
        #expect(framed.open)

        let chunked = try Self.respond(version: .http1_1)
        #expect(chunked.bytes.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(chunked.bytes.lowercased().contains("transfer-encoding: chunked"))
        #expect(chunked.bytes.hasSuffix("4\r\ndata\r\n0\r\n\r\n"), "\(chunked.bytes)")
        #expect(chunked.open)

        let closing = try Self.respond(version: .http1_1, headers: ["connection": "close"])
        #expect(closing.bytes.lowercased().contains("connection: close"))
        #expect(!closing.open)
    }
}
