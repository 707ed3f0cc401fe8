import FleetTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import Testing

@testable import FleetHTTP2

/// Answers `/late` 408 from a timer, `after` the head, then drains — what CompletionHandler's
/// body deadline does (b7244be). Everything else: EarlyRefuser.
struct LateAnswerer: HTTPServerResponder {
    var after: TimeAmount = .seconds(30)

    final class Late: HTTPStreamDelegate {
        let stream: any HTTPStream
        init(stream: any HTTPStream, after: TimeAmount) {
            self.stream = stream
            let bound = NIOLoopBound(stream, eventLoop: stream.eventLoop)
            _ = stream.eventLoop.scheduleTask(in: after) {
                let stream = bound.value
                stream.sendResponse(
                    status: .requestTimeout, contentType: "application/json", body: ByteBuffer(string: "{\"e\":1}"))
                // The response ended before the request: the stream drains the rest itself.
            }
        }
        func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
        func streamDidReceiveEnd(trailers: HTTPFields?) {}
        func streamDidClose(error: HTTPStreamError?) {}
    }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        request.path == "/late"
            ? Late(stream: stream, after: self.after)
            : EarlyRefuser().stream(stream, didReceive: request, connection: connection)
    }

    func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse? {
        EarlyRefuser().earlyResponse(method: method, path: path, eventLoop: eventLoop)
    }
}

@Suite("The drain of a request answered before its end: its deadline holds (helper-57)")
struct DrainDeadlineTests {
    /// drain(_:) takes its deadline from coarseNow, the time of the connection's last read or flush;
    /// a drain started from a timer (the 408) on a quiet connection gets a deadline in the past.
    @Test("A drain started from a timer 30 s after the last read still gives the client 10 s")
    func drainFromTimerOnQuietConnection() throws {
        let pair = try Pair(responder: LateAnswerer())
        var request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/late")
        request.headerFields[.contentType] = "application/json"
        let slow = Recorder()
        slow.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: slow)
        slow.stream?.sendData(ByteBuffer(string: "{\"model\":"), endStream: false)
        try pair.interact()
        pair.loop.advanceTime(by: .seconds(30))  // the body deadline: 408, then drain
        try pair.interact()
        #expect(slow.response?.status.code == 408)
        pair.loop.advanceTime(by: .milliseconds(1))
        try pair.interact()
        // The client has 10 s to finish sending (drainTimeout)...
        #expect(!slow.closed, "reset right after the 408")
        // ...and not more: 11 s after the 408 the stream is reset with NO_ERROR.
        pair.loop.advanceTime(by: .seconds(11))
        try pair.interact()
        #expect(slow.closed, "still open 11 s after the 408: the drain has no deadline")
        for _ in 0..<60 {
            pair.loop.advanceTime(by: .seconds(60))
            try pair.interact()
        }
        #expect(slow.closed, "still open an hour after the 408")
        #expect(pair.serverHandler.openStreamCount == 0)
    }

    /// stopDraining declines while the answer waits for window, and sweepDrains then forgets the
    /// stream: once the client opens its window the drain has no deadline any more.
    @Test("A drained stream whose answer waited for window at the deadline is still reset later")
    func drainDeadlineForgotten() throws {
        let pair = try Pair(client: .init(initialStreamWindowSize: 1), responder: EarlyRefuser())
        var request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/refused")
        request.headerFields[.contentType] = "application/json"
        let client = Recorder(autoConsume: false)
        client.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: client)
        client.stream?.sendData(ByteBuffer(string: "{\"first\":"), endStream: false)
        try pair.interact()
        #expect(client.response?.status.code == 503 && client.body.count == 1)  // 1 byte of window
        pair.loop.advanceTime(by: .seconds(11))  // past the drain deadline, answer still queued
        try pair.interact()
        #expect(!client.closed)
        client.autoConsume = true  // now the client reads the answer
        client.stream?.consume(client.body.count)
        try pair.interact()
        #expect(client.body.count == EarlyRefuser.refusal.body.readableBytes)
        for _ in 0..<60 {  // an hour, without sending a byte
            pair.loop.advanceTime(by: .seconds(60))
            try pair.interact()
        }
        #expect(client.closed, "the drained stream is still open an hour later")
        #expect(pair.serverHandler.openStreamCount == 0)
    }
}
