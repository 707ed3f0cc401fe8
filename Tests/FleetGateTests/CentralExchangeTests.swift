import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import FleetGate
@testable import FleetHTTP1Client

/// The central exchange between the HTTP/1.1 connection and the dispatcher, on an embedded channel.
@Suite("Central exchange")
struct CentralExchangeTests {
    /// Counts the read requests that reach the channel: a paused connection holds them back.
    final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    /// A dispatcher stand-in: consumes what it takes while its attempt is open; none after.
    final class Relay: UpstreamEvents, @unchecked Sendable {
        var open = true
        var received: [String] = []
        var ended = false
        weak var exchange: CentralExchange?
        func upstream(_ attempt: Int, didReceiveStatus status: Int) {}
        func upstream(_ attempt: Int, didReceive data: ByteBuffer) {
            self.received.append(String(buffer: data))
            guard self.open else { return }  // as Dispatcher: an unknown attempt's bytes are not consumed
            self.exchange?.consume(data.readableBytes)
            if String(buffer: data).contains("[DONE]") { self.open = false }  // finished and closed
        }
        func upstreamDidEnd(_ attempt: Int) { self.ended = true }
        var failed: String?
        func upstream(_ attempt: Int, didFail failure: UpstreamFailure) { self.failed = failure.label }
        func upstreamIsOpen(_ attempt: Int) -> Bool { self.open }
    }

    /// A review finding: bytes after `[DONE]` in a later read were not consumed (the attempt was gone),
    /// so the exchange paused the connection for good — never back in the pool, the dispatcher held.
    @Test("Bytes after the attempt's end neither reach it nor pause the connection", .timeLimit(.minutes(1)))
    func bytesAfterTheEnd() throws {
        let loop = EmbeddedEventLoop()
        let pool = HTTP1ConnectionPool(
            eventLoop: loop, endpoint: try HTTP1Endpoint(baseURL: "http://127.0.0.1:9", connectTimeout: .seconds(1)),
            configuration: .init(maxIdle: 4, idleTimeout: .seconds(60)))
        let connection = HTTP1ClientConnection(pool: pool)
        let counter = ReadCounter()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandlers([counter] + HTTP1Endpoint.handlers(ending: connection))
        let relay = Relay()
        let exchange = CentralExchange(
            relay: relay, attempt: 1, pool: pool, path: "/v1/chat/completions", body: ByteBuffer(string: "{}"),
            headers: [])
        relay.exchange = exchange
        #expect(exchange.exchangeAttached(connection))
        connection.send(pool.endpoint.post(path: "/chat/completions", body: ByteBuffer(string: "{}")), to: exchange)
        try channel.writeInbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\ne\r\ndata: [DONE]\n\n\r\n"))
        #expect(relay.received == ["data: [DONE]\n\n"] && !relay.open)
        #expect(!connection.isClosed && relay.failed == nil && !relay.ended)
        // A trailing comment in a read of its own, then the response's end in another.
        try channel.writeInbound(ByteBuffer(string: "7\r\n: bye\n\n\r\n"))
        #expect(relay.received == ["data: [DONE]\n\n"])  // not delivered to an attempt that is over
        #expect(!connection.isClosed)
        let before = counter.reads
        channel.read()
        #expect(counter.reads == before + 1)  // not paused: the connection reads on
        try channel.writeInbound(ByteBuffer(string: "0\r\n\r\n"))
        #expect(!connection.isClosed)
        #expect(pool.idleCount == 1)  // back in the pool
        _ = try? channel.finish()
    }
}
