import NIOCore
import NIOEmbedded
import Testing

@testable import FleetHTTP2

/// The drain of an HTTP/1.1 connection (``HTTP1QuiesceHandler``); what it waits for is in SlowClientTests.
@Suite("HTTP/1.1 drain")
struct HTTP1QuiesceHandlerTests {
    /// Counts the quiesce events that reach the next handler (NIO's pipelining helper in the server).
    final class QuiesceRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var seen = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { self.seen += 1 }
        }
    }

    static func drained(grace: TimeAmount) throws -> (EmbeddedChannel, QuiesceRecorder) {
        let channel = EmbeddedChannel()
        let recorder = QuiesceRecorder()
        try channel.pipeline.syncOperations.addHandler(HTTP1QuiesceHandler(grace: grace))
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        return (channel, recorder)
    }

    @Test("helper-94: a drained connection closes when the grace is over, as an HTTP/2 one does after GOAWAY")
    func graceCloses() throws {
        let (channel, recorder) = try Self.drained(grace: .seconds(30))
        #expect(recorder.seen == 1, "nothing queued: the drain is passed on at once")
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test("No grace (0): a drained connection is left to its own timers")
    func noGrace() throws {
        let (channel, recorder) = try Self.drained(grace: .zero)
        #expect(recorder.seen == 1)
        channel.embeddedEventLoop.advanceTime(by: .seconds(3_600))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}
