import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import FleetHTTP1Client

/// What a receiver is told as NIO's decoder reads a response — an embedded channel, no sockets.
@Suite("HTTP/1.1 client connection")
struct HTTP1ClientConnectionTests {
    /// Records the calls; `abandonOnBody`: lets go of the connection when body bytes arrive.
    final class Recorder: HTTP1ResponseReceiver {
        var events: [String] = []
        var connection: HTTP1ClientConnection?
        var abandonOnBody = false
        /// Parts wanted at once for this many more parts.
        var partsAtOnce = 0
        var recordAsks = false
        var wantsBodyPartsAtOnce: Bool {
            if self.recordAsks { self.events.append("asked") }
            return self.partsAtOnce > 0
        }
        func exchangeAttached(_ connection: HTTP1ClientConnection) -> Bool { true }
        func exchangeDidReceiveHead(_ head: HTTPResponseHead) { self.events.append("head \(head.status.code)") }
        func exchangeDidReceiveBody(_ part: ByteBuffer) {
            self.partsAtOnce -= 1
            self.events.append("body \(String(buffer: part))")
            if self.abandonOnBody { self.connection?.abandon() }
        }
        func exchangeDidFinishRead() { self.events.append("read") }
        func exchangeDidEnd() { self.events.append("end") }
        func exchangeDidFail(_ error: any Error, retryable: Bool) { self.events.append("fail retryable=\(retryable)") }
    }

    private static func connected() throws -> (EmbeddedChannel, HTTP1ClientConnection, HTTP1ConnectionPool) {
        let loop = EmbeddedEventLoop()
        let pool = HTTP1ConnectionPool(
            eventLoop: loop, endpoint: try HTTP1Endpoint(baseURL: "http://127.0.0.1:9", connectTimeout: .seconds(1)),
            configuration: .init(maxIdle: 4, idleTimeout: .seconds(60)))
        let connection = HTTP1ClientConnection(pool: pool)
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandlers(HTTP1Endpoint.handlers(ending: connection))
        return (channel, connection, pool)
    }

    private static let request = HTTP1Request(
        target: "/v1/chat/completions", host: "127.0.0.1:9", accept: "text/event-stream", headers: [],
        body: ByteBuffer(string: "{}"))

    @Test("A request goes out as one framed write; the decoder pairs the response with it", .timeLimit(.minutes(1)))
    func oneWrite() throws {
        let (channel, connection, pool) = try Self.connected()
        let recorder = Recorder()
        connection.send(
            pool.endpoint.post(
                path: "/chat/completions", body: ByteBuffer(string: "{\"a\":1}"), headers: [("x-request-id", "r-1")]),
            to: recorder)
        #expect(
            try channel.readOutbound(as: IOData.self)
                == .byteBuffer(
                    ByteBuffer(
                        string:
                            "POST /chat/completions HTTP/1.1\r\nhost: 127.0.0.1:9\r\ncontent-type: application/json\r\n"
                            + "accept: text/event-stream\r\nx-request-id: r-1\r\ncontent-length: 7\r\n\r\n{\"a\":1}")))
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        // Without the head NIO's decoder would refuse the answer as unsolicited.
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        #expect(recorder.events == ["head 200", "body ok", "end"])
        #expect(pool.idleCount == 1)
        _ = try? channel.finish()
    }

    @Test(
        "The chunks one read brings reach the receiver as one buffer, at the read's end or the response's",
        .timeLimit(.minutes(1)))
    func oneBufferPerRead() throws {
        let (channel, connection, pool) = try Self.connected()
        let recorder = Recorder()
        connection.send(Self.request, to: recorder)
        channel.pipeline.fireChannelRead(
            ByteBuffer(
                string: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n"))
        #expect(recorder.events == ["head 200"])  // the body waits for the read's end
        channel.pipeline.fireChannelReadComplete()
        #expect(recorder.events == ["head 200", "body onetwothree", "read"])
        // The last piece and the end in one read: the piece first, then the end, and the connection is
        // parked; nothing after the end (writeInbound ends the read too).
        try channel.writeInbound(ByteBuffer(string: "4\r\nfour\r\n0\r\n\r\n"))
        #expect(recorder.events == ["head 200", "body onetwothree", "read", "body four", "end"])
        #expect(pool.idleCount == 1 && !connection.isClosed)
        _ = try? channel.finish()
    }

    @Test(
        "A receiver that wants parts at once gets each until it stops asking; then the read's rest is joined",
        .timeLimit(.minutes(1)))
    func partsAtOnce() throws {
        let (channel, connection, _) = try Self.connected()
        let recorder = Recorder()
        recorder.partsAtOnce = 2
        recorder.recordAsks = true
        connection.send(Self.request, to: recorder)
        channel.pipeline.fireChannelRead(
            ByteBuffer(
                string:
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n4\r\nfour\r\n"
            ))
        // Asked before each part until one is joined; never again in the same read after that.
        #expect(recorder.events == ["head 200", "asked", "body one", "asked", "body two", "asked"])
        channel.pipeline.fireChannelReadComplete()
        #expect(recorder.events.suffix(2) == ["body threefour", "read"])
        _ = try? channel.finish()
    }

    @Test(
        "A receiver that lets go while it reads the last pieces is not told the end; the connection closes",
        .timeLimit(.minutes(1)))
    func abandonDuringLastPieces() throws {
        let (channel, connection, pool) = try Self.connected()
        let recorder = Recorder()
        recorder.connection = connection
        recorder.abandonOnBody = true
        connection.send(Self.request, to: recorder)
        try channel.writeInbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"))
        #expect(recorder.events == ["head 200", "body hello"])
        #expect(connection.isClosed && pool.idleCount == 0)
        _ = try? channel.finish()
    }

    /// One exchange completed on the connection, so the next one is on a reused connection (the
    /// pool is returned to keep it alive: the connection holds it weakly, and closes without it).
    private static func reused() throws -> (EmbeddedChannel, HTTP1ClientConnection, Recorder, HTTP1ConnectionPool) {
        let (channel, connection, pool) = try Self.connected()
        connection.send(Self.request, to: Recorder())
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        let recorder = Recorder()
        #expect(pool.idleCount == 1 && !connection.isClosed)
        connection.send(Self.request, to: recorder)
        return (channel, connection, recorder, pool)
    }

    @Test(
        "A reused connection the server closed before any byte of an answer: retryable (the idle-close race)",
        .timeLimit(.minutes(1)))
    func idleCloseIsRetryable() throws {
        let (channel, _, recorder, pool) = try Self.reused()
        defer { withExtendedLifetime(pool) {} }
        channel.pipeline.fireChannelInactive()
        #expect(recorder.events == ["fail retryable=true"])
        _ = try? channel.finish()
    }

    @Test(
        "A reused connection closed in the middle of an answer's head: not retryable (the server had the request)",
        .timeLimit(.minutes(1)))
    func partialHeadIsNotRetryable() throws {
        let (channel, _, recorder, pool) = try Self.reused()
        defer { withExtendedLifetime(pool) {} }
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-le"))
        channel.pipeline.fireChannelInactive()
        #expect(recorder.events == ["read", "fail retryable=false"])
        _ = try? channel.finish()
    }

    @Test(
        "A reused connection's second answer is paired with its request and parked again; one the server closes is not",
        .timeLimit(.minutes(1)))
    func reuseAndServerClose() throws {
        let (channel, connection, pool) = try Self.connected()
        connection.send(Self.request, to: Recorder())
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        #expect(pool.idleCount == 1)
        // The pool leases the parked connection; NIO's decoder is told of this request too (without
        // its `.head` it would refuse the answer as unsolicited).
        let second = Recorder()
        pool.post(path: "/chat/completions", body: ByteBuffer(string: "{}"), to: second)
        #expect(pool.idleCount == 0)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo"))
        #expect(second.events == ["head 200", "body two", "end"])
        #expect(pool.idleCount == 1 && !connection.isClosed)
        let last = Recorder()
        pool.post(path: "/chat/completions", body: ByteBuffer(string: "{}"), to: last)
        try channel.writeInbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 4\r\n\r\nlast"))
        #expect(last.events == ["head 200", "body last", "end"])
        #expect(pool.idleCount == 0 && connection.isClosed)
        _ = try? channel.finish()
    }

    @Test("A first exchange is never retried, whatever ends it", .timeLimit(.minutes(1)))
    func firstExchangeIsNotRetryable() throws {
        let (channel, connection, _) = try Self.connected()
        let recorder = Recorder()
        connection.send(Self.request, to: recorder)
        channel.pipeline.fireChannelInactive()
        #expect(recorder.events == ["fail retryable=false"])
        _ = try? channel.finish()
    }
}
