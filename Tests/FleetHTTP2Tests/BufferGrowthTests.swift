import FleetTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import FleetHTTP2

/// helper-128: a reader slower than its answer kept every byte the stream had ever sent, not the bytes
/// still queued — a queue appended at its end and read at its front grew without end.
@Suite("Queues of slow readers hold what is queued, not what passed", .serialized)
struct BufferGrowthTests {
    @Test("HTTP/2: a stream's outbound bytes, pulled a window at a time while more are queued, stay bounded")
    func http2Outbound() throws {
        let pair = try Pair()
        let reader = Recorder(autoConsume: false)
        var request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/echo")
        request.headerFields[.contentType] = "text/plain"
        reader.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: reader)
        try pair.interact()
        let sending = try #require(pair.serverHandler.stream(reader.stream!.id))
        let piece = ByteBuffer(repeating: UInt8(ascii: "t"), count: 1_000)
        var largest = 0
        for _ in 0..<3_000 {
            sending.sendData(piece, endStream: false)
            reader.stream?.consume(900)  // a reader a little slower than the answer: the queue never drains
            try pair.interact()
            largest = max(largest, sending.outbound?.storageCapacity ?? 0)
        }
        #expect(reader.body.count > 2_600_000, "\(reader.body.count)")  // ~2.7 MB passed through the queue
        let queued = sending.bufferedOutboundBytes
        #expect(queued > 200_000, "\(queued)")  // ~300 KB still queued
        #expect(largest < 4 * queued, "the queue's storage reached \(largest) bytes for \(queued) queued")
    }

    @Test("HTTP/1.1: parts written while the connection is not writable are queued as one part per 64 KiB")
    func http1Coalesced() throws {
        let keeper = StreamKeeper()
        let channel = EmbeddedChannel(
            handler: HTTP1ServerStreamHandler(
                responder: keeper,
                connectionInfo: HTTPConnectionInfo(
                    remoteAddress: nil, localAddress: nil, httpProtocol: "http/1.1", isTLS: false)))
        try channel.writeInbound(
            HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "test", path: "/")))
        let stream = try #require(keeper.stream)
        stream.sendResponse(HTTPResponse(status: .ok), endStream: false)
        channel.isWritable = false  // a reader that stopped: NIO's queue passed its high-water mark
        let token = ByteBuffer(repeating: UInt8(ascii: "t"), count: 100)
        for _ in 0..<1_000 { stream.sendData(token, endStream: false) }
        channel.embeddedEventLoop.run()  // the end of the pass: its flush
        var parts: [Int] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            if case .body(let bytes) = part { parts.append(bytes.readableBytes) }
        }
        // 100 KB of tokens: one part of 64 KiB queued; the rest waits until the connection is writable.
        #expect(parts == [65_600], "\(parts.count) parts")
        #expect(stream.bufferedOutboundBytes == 100_000 - 65_600)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        // Not inside the event (the handlers in front must see the connection writable first): after it.
        #expect(stream.bufferedOutboundBytes == 100_000 - 65_600)
        channel.embeddedEventLoop.run()
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            if case .body(let bytes) = part { parts.append(bytes.readableBytes) }
        }
        #expect(parts == [65_600, 34_400])
        stream.sendData(token, endStream: true)  // writable again: as it comes
        channel.embeddedEventLoop.run()
        var last: [Int] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            if case .body(let bytes) = part { last.append(bytes.readableBytes) }
        }
        #expect(last == [100])
    }
}

/// Keeps the stream of the one request it is given (an embedded loop's: one thread).
final class StreamKeeper: HTTPServerResponder, HTTPStreamDelegate, @unchecked Sendable {
    var stream: (any HTTPStream)?
    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        self.stream = stream
        return self
    }
    func streamDidReceiveData(_ data: ByteBuffer) {}
    func streamDidReceiveEnd(trailers: HTTPFields?) {}
    func streamDidClose(error: HTTPStreamError?) {}
}
