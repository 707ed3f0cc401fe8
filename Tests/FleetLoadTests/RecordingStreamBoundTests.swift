import FleetHTTP2
import FleetTesting
import HTTPTypes
import NIOCore
import NIOPosix
import Testing

/// A server that takes every request and never answers.
private struct Silent: HTTPServerResponder {
    final class Delegate: HTTPStreamDelegate {
        func streamDidReceiveData(_ data: ByteBuffer) {}
        func streamDidReceiveEnd(trailers: HTTPFields?) {}
        func streamDidClose(error: HTTPStreamError?) {}
    }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    { Delegate() }
}

/// A test's own `for await` over a stream's events is bounded (CI of 353c632 ran into its limit).
@Suite("Recording streams", .timeLimit(.minutes(1)))
struct RecordingStreamBoundTests {
    @Test("A stream the server never answers: bound() ends the test's loop and resets the stream; collect() returns")
    func bound() async throws {
        let server = try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, responder: Silent())
        defer { server.close(promise: nil) }
        let client = try await RecordingClient.connect(port: try #require(server.localAddress?.port))
        defer { client.close() }
        let stream = try await client.post("/v1/chat/completions", json: "{}")
        let bound = stream.bound(.seconds(1))
        var events: [RecordedEvent] = []
        for await event in stream.events { events.append(event) }
        bound.cancel()
        // Nothing arrived but (perhaps) the close of the reset: no head, no end.
        #expect(!events.contains { if case .response = $0 { true } else { false } })
        #expect(!events.contains { if case .end = $0 { true } else { false } })
        let collected = await stream.collect(timeout: .seconds(5))
        #expect(collected.response == nil && !collected.ended)
    }
}
