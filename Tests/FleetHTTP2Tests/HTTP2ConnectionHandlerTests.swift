import FleetTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import Testing

@testable import FleetHTTP2

/// Records a stream's events on an embedded loop.
final class Recorder: HTTPStreamDelegate {
    var response: HTTPResponse?
    var body: [UInt8] = []
    var ended = false
    var closed = false
    var error: HTTPStreamError?
    var autoConsume: Bool
    var stream: HTTP2Stream?

    init(autoConsume: Bool = true) { self.autoConsume = autoConsume }

    func streamDidReceiveResponse(_ response: HTTPResponse) { self.response = response }
    func streamDidReceiveData(_ data: ByteBuffer) {
        self.body += data.readableBytesView
        if self.autoConsume { self.stream?.consume(data.readableBytes) }
    }
    var trailers: HTTPFields?
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.ended = true
        self.trailers = trailers
    }
    func streamDidClose(error: HTTPStreamError?) {
        self.closed = true
        self.error = error
    }
}

final class ConnectionEvents: HTTP2ConnectionDelegate {
    var goAway: HTTP2ErrorCode?
    var closed = false
    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode, debugData: String) {
        self.goAway = errorCode
    }
    func connectionDidClose() { self.closed = true }
}

/// A client-role and a server-role handler on embedded channels, with bytes shuttled between them.
struct Pair {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientHandler: HTTP2ConnectionHandler
    let serverHandler: HTTP2ConnectionHandler

    init(
        client: HTTP2Configuration = .defaults, server: HTTP2Configuration = .defaults,
        responder: any HTTPServerResponder = TestResponder()
    ) throws {
        self.clientHandler = HTTP2ConnectionHandler(role: .client, configuration: client)
        self.serverHandler = HTTP2ConnectionHandler(role: .server(responder), configuration: server)
        self.client = EmbeddedChannel(handler: self.clientHandler, loop: self.loop)
        self.server = EmbeddedChannel(handler: self.serverHandler, loop: self.loop)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        _ = self.client.connect(to: address)
        _ = self.server.connect(to: address)
        try self.interact()
    }

    /// Moves bytes both ways until neither side has anything more to say.
    func interact() throws {
        var progress = true
        while progress {
            progress = false
            self.loop.run()
            while let bytes = try self.client.readOutbound(as: ByteBuffer.self) {
                if self.server.isActive { try self.server.writeInbound(bytes) }
                progress = true
            }
            while let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                if self.client.isActive { try self.client.writeInbound(bytes) }
                progress = true
            }
        }
    }

    func get(_ path: String, recorder: Recorder) throws -> HTTP2Stream {
        let request = HTTPRequest(method: .get, scheme: "http", authority: "test", path: path)
        let stream = try self.clientHandler.openStream(request, endStream: true, delegate: recorder)
        recorder.stream = stream
        return stream
    }
}

@Suite("HTTP/2 connection handler over embedded channels")
struct HTTP2ConnectionHandlerTests {
    @Test("A request and its response round-trip between the client and server roles")
    func roundTrip() throws {
        let pair = try Pair()
        let recorder = Recorder()
        _ = try pair.get("/", recorder: recorder)
        try pair.interact()
        #expect(recorder.response?.status == .ok)
        #expect(String(decoding: recorder.body, as: UTF8.self) == "Hello, world\n")
        #expect(recorder.ended && recorder.closed && recorder.error == nil)
        #expect(pair.serverHandler.openStreamCount == 0)
    }

    @Test("flushNow writes what is queued at once; sendData alone waits for the end of the pass")
    func flushNow() throws {
        let pair = try Pair()
        let request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/echo")
        let stream = try pair.clientHandler.openStream(request, endStream: false, delegate: Recorder())
        try pair.interact()
        stream.sendData(ByteBuffer(string: "first-token"), endStream: false)
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == nil, "written before the pass ended")
        stream.flushNow()
        let written = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: written).contains("first-token"))
        pair.loop.run()  // the scheduled flush finds nothing left to write
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == nil)
    }

    /// A read always ends with a flush (`channelReadComplete`), so this holds with or without
    /// flushNow's deferral; the deferral keeps a flush asked for inside `mem_send` from being dropped.
    @Test("flushNow from inside the connection's own processing: the echo goes out when the read ends")
    func flushNowWhileProcessing() throws {
        let pair = try Pair(server: .defaults, responder: EagerEcho())
        let recorder = Recorder()
        let request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/")
        let stream = try pair.clientHandler.openStream(request, endStream: false, delegate: recorder)
        recorder.stream = stream
        try pair.interact()
        stream.sendData(ByteBuffer(string: "ping"), endStream: false)
        pair.loop.run()  // the client's scheduled flush
        // One read on the server: the echo is queued and flushNow called inside nghttp2's callback.
        let toServer = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        try pair.server.writeInbound(toServer)
        let echoed = try #require(try pair.server.readOutbound(as: ByteBuffer.self), "the flush was lost")
        #expect(String(buffer: echoed).contains("ping"))
    }

    @Test("Trailers travel after the body")
    func trailers() throws {
        let pair = try Pair()
        let recorder = Recorder()
        _ = try pair.get("/trailers", recorder: recorder)
        try pair.interact()
        #expect(String(decoding: recorder.body, as: UTF8.self) == "body")
        #expect(recorder.trailers?[HTTPField.Name("x-checksum")!] == "42")
        #expect(recorder.ended && recorder.error == nil)
    }

    @Test("Stream credit follows consumption: no more than the window arrives until the reader consumes")
    func flowControl() throws {
        let window = 16_384
        let pair = try Pair(client: HTTP2Configuration(initialStreamWindowSize: window))
        let recorder = Recorder(autoConsume: false)
        let stream = try pair.get("/stream?bytes=100000", recorder: recorder)
        try pair.interact()
        #expect(recorder.body.count == window)
        try pair.interact()
        #expect(recorder.body.count == window, "nothing more without consumption")
        stream.consume(window)
        try pair.interact()
        #expect(recorder.body.count == 2 * window)
        recorder.autoConsume = true
        stream.consume(window)
        try pair.interact()
        #expect(recorder.body.count == 100_000 && recorder.ended)
    }

    @Test(
        "Nothing is produced while the socket is unwritable, however wide the peer's window; it resumes on writability")
    func unwritableSocketBoundsMemory() throws {
        let pair = try Pair(client: HTTP2Configuration(initialStreamWindowSize: 1 << 24, connectionWindowSize: 1 << 30))
        let recorder = Recorder()
        pair.server.isWritable = false
        pair.server.pipeline.fireChannelWritabilityChanged()
        _ = try pair.get("/stream?bytes=4000000", recorder: recorder)
        try pair.interact()
        #expect(recorder.response == nil && recorder.body.isEmpty)
        #expect(try pair.server.readOutbound(as: ByteBuffer.self) == nil)
        pair.server.isWritable = true
        pair.server.pipeline.fireChannelWritabilityChanged()
        try pair.interact()
        #expect(recorder.body.count == 4_000_000 && recorder.ended)
    }

    @Test("A client reset closes the stream on both sides with CANCEL")
    func reset() throws {
        let pair = try Pair(client: HTTP2Configuration(initialStreamWindowSize: 1024))
        let recorder = Recorder(autoConsume: false)
        let stream = try pair.get("/stream?bytes=1000000", recorder: recorder)
        try pair.interact()
        #expect(pair.serverHandler.openStreamCount == 1)
        stream.reset(.cancel)
        try pair.interact()
        #expect(recorder.closed)
        #expect(recorder.error == HTTPStreamError(code: .cancel, byPeer: false))
        #expect(pair.serverHandler.openStreamCount == 0)
    }

    @Test("PING measures a round trip")
    func ping() throws {
        let pair = try Pair()
        let pong = pair.clientHandler.ping()
        pair.loop.advanceTime(by: .milliseconds(7))
        try pair.interact()
        // The embedded loop has run everything: the future is complete and wait() returns at once.
        #expect(try pong.wait() == .milliseconds(7))
        #expect(pair.clientHandler.lastRTT == .milliseconds(7))
    }

    @Test("Keepalive: answered PINGs keep the connection; one unanswered for the keepalive timeout closes it")
    func keepalive() throws {
        let pair = try Pair(server: HTTP2Configuration(keepaliveInterval: .seconds(1), keepaliveTimeout: .seconds(2)))
        for _ in 0..<5 {
            pair.loop.advanceTime(by: .seconds(1))
            try pair.interact()
        }
        #expect(pair.server.isActive && pair.serverHandler.lastRTT == .zero)
        pair.loop.advanceTime(by: .seconds(1))  // a PING goes out, and nothing carries it to the client
        pair.loop.advanceTime(by: .milliseconds(1_999))
        #expect(pair.server.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.server.isActive)
    }

    @Test("Graceful GOAWAY: the peer hears it, the open stream finishes, then the connection closes")
    func gracefulGoAway() throws {
        let pair = try Pair(client: HTTP2Configuration(initialStreamWindowSize: 4096))
        let events = ConnectionEvents()
        pair.clientHandler.delegate = events
        let recorder = Recorder(autoConsume: false)
        let stream = try pair.get("/stream?bytes=50000", recorder: recorder)
        try pair.interact()
        pair.serverHandler.beginGracefulShutdown()
        try pair.interact()
        #expect(events.goAway == .noError)
        #expect(pair.server.isActive, "in-flight stream keeps the connection")
        #expect(throws: HTTP2ConnectionError.self) {
            _ = try pair.clientHandler.openStream(
                HTTPRequest(method: .get, scheme: "http", authority: "t", path: "/"), endStream: true,
                delegate: Recorder())
        }
        recorder.autoConsume = true
        stream.consume(recorder.body.count)
        try pair.interact()
        #expect(recorder.body.count == 50_000 && recorder.ended)
        try pair.interact()
        #expect(!pair.server.isActive)
    }

    @Test("A stream the peer holds at a zero window is reset after the stall timeout")
    func zeroWindowStall() throws {
        let pair = try Pair(
            client: HTTP2Configuration(initialStreamWindowSize: 0),
            server: HTTP2Configuration(stallTimeout: .seconds(2)))
        let recorder = Recorder(autoConsume: false)
        _ = try pair.get("/stream?bytes=100000", recorder: recorder)
        try pair.interact()
        #expect(recorder.body.isEmpty && !recorder.closed)
        pair.loop.advanceTime(by: .seconds(3))
        try pair.interact()
        #expect(recorder.closed)
        #expect(recorder.error == HTTPStreamError(code: .cancel, byPeer: true))
    }

    @Test("A connection with no stream for the idle timeout gets GOAWAY and closes")
    func idleTimeout() throws {
        let pair = try Pair(server: HTTP2Configuration(idleTimeout: .seconds(5)))
        let events = ConnectionEvents()
        pair.clientHandler.delegate = events
        _ = try pair.get("/", recorder: Recorder())
        try pair.interact()
        pair.loop.advanceTime(by: .seconds(4))
        try pair.interact()
        #expect(pair.server.isActive)
        pair.loop.advanceTime(by: .seconds(2))
        try pair.interact()
        #expect(events.goAway == .noError)
        #expect(!pair.server.isActive)
    }

    /// The idle timer's task stays scheduled across streams and is moved to the latest deadline
    /// when it fires early: the timeout still counts from the last stream's close.
    @Test("The idle timeout counts from the last stream's close, and a busy connection is not closed")
    func idleTimeoutRestarts() throws {
        let pair = try Pair(server: HTTP2Configuration(idleTimeout: .seconds(5)))
        let events = ConnectionEvents()
        pair.clientHandler.delegate = events
        _ = try pair.get("/", recorder: Recorder())
        try pair.interact()
        pair.loop.advanceTime(by: .seconds(3))
        _ = try pair.get("/", recorder: Recorder())
        try pair.interact()
        pair.loop.advanceTime(by: .seconds(3))  // 6 s after the first close, 3 s after the last
        try pair.interact()
        #expect(pair.server.isActive && events.goAway == nil)
        pair.loop.advanceTime(by: .seconds(1))
        _ = try pair.get("/stream?bytes=100000", recorder: Recorder(autoConsume: false))  // stays open
        try pair.interact()
        pair.loop.advanceTime(by: .seconds(10))
        try pair.interact()
        #expect(pair.server.isActive && events.goAway == nil)
    }

    @Test("A peer that never completes the handshake is closed with SETTINGS_TIMEOUT")
    func handshakeTimeout() throws {
        let loop = EmbeddedEventLoop()
        let server = EmbeddedChannel(
            handler: HTTP2ConnectionHandler(
                role: .server(TestResponder()), configuration: HTTP2Configuration(handshakeTimeout: .seconds(10))),
            loop: loop)
        _ = server.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1))
        loop.advanceTime(by: .seconds(11))
        var out: [UInt8] = []
        while let b = try server.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
        #expect(Frames.parse(out).compactMap(\.goAwayCode) == [0x4])
        #expect(!server.isActive)
    }

    @Test("A header list over the limit is reset without decoding the rest, and the connection stays usable")
    func headerListTooLarge() throws {
        let pair = try Pair(server: HTTP2Configuration(maxHeaderListSize: 1024))
        let recorder = Recorder()
        var request = HTTPRequest(method: .get, scheme: "http", authority: "t", path: "/")
        request.headerFields[HTTPField.Name("x-big")!] = String(repeating: "v", count: 2000)
        recorder.stream = try pair.clientHandler.openStream(request, endStream: true, delegate: recorder)
        try pair.interact()
        #expect(recorder.response == nil && recorder.closed && recorder.error?.byPeer == true)
        let next = Recorder()
        _ = try pair.get("/", recorder: next)
        try pair.interact()
        #expect(next.response?.status == .ok)
    }
}

/// Answers at once and echoes each body part with ``HTTPStream/flushNow()``, from inside the
/// server connection's processing of the client's frames.
struct EagerEcho: HTTPServerResponder {
    final class Delegate: HTTPStreamDelegate {
        let stream: any HTTPStream
        init(stream: any HTTPStream) { self.stream = stream }
        func streamDidReceiveData(_ data: ByteBuffer) {
            self.stream.sendData(data, endStream: false)
            self.stream.flushNow()
            self.stream.consume(data.readableBytes)
        }
        func streamDidReceiveEnd(trailers: HTTPFields?) { self.stream.sendEnd(trailers: nil) }
        func streamDidClose(error: HTTPStreamError?) {}
    }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        stream.sendResponse(HTTPResponse(status: .ok), endStream: false)
        return Delegate(stream: stream)
    }
}
