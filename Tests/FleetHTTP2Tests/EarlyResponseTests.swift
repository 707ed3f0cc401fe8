import FleetTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import Testing

@testable import FleetHTTP2

/// Refuses `/refused` on the header block with a response made once; the rest is
/// ``TestResponder``'s (which would answer `/refused` 200 "Hello, world").
struct EarlyRefuser: HTTPServerResponder {
    static let refusal = HTTPPrebuiltResponse(
        status: 503, fields: [("content-type", "application/json"), ("retry-after", "1")],
        body: ByteBuffer(string: #"{"error":{"code":"server_overloaded"}}"#),
        echo: .init(
            name: "x-request-id", accepts: { !$0.isEmpty && !$0.contains(UInt8(ascii: " ")) },
            generate: { "generated-id" }))

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        TestResponder().stream(stream, didReceive: request, connection: connection)
    }

    func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse? {
        path == "/refused" ? Self.refusal : nil
    }
}

@Suite("The responder's early answer: a prebuilt response on the header block (issue #19)")
struct EarlyResponseTests {
    @Test("A refused POST gets the prebuilt response; the rest of its body is drained; others are served")
    func refusal() throws {
        let pair = try Pair(responder: EarlyRefuser())
        let refused = Recorder()
        var request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/refused")
        request.headerFields[.contentType] = "application/json"
        refused.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: refused)
        refused.stream?.sendData(ByteBuffer(string: "{\"first\":"), endStream: false)
        try pair.interact()
        #expect(refused.response?.status.code == 503)
        #expect(refused.response?.headerFields[.retryAfter] == "1")
        #expect(refused.response?.headerFields[.contentType] == "application/json")
        #expect(refused.response?.headerFields[.contentLength] == String(EarlyRefuser.refusal.body.readableBytes))
        #expect(String(decoding: refused.body, as: UTF8.self) == #"{"error":{"code":"server_overloaded"}}"#)
        // The client has not ended its body: the stream stays open for the rest, beyond the stream
        // window, which is read and dropped (a reset here cost curl 7.88 the answer: error 92).
        #expect(refused.ended && !refused.closed)
        refused.stream?.sendData(ByteBuffer(repeating: UInt8(ascii: "x"), count: 200_000), endStream: true)
        try pair.interact()
        #expect(refused.closed && refused.error == nil)
        #expect(pair.serverHandler.openStreamCount == 0)
        // No request id: one is generated.
        #expect(refused.response?.headerFields[HTTPField.Name("x-request-id")!] == "generated-id")

        // A request id is echoed when acceptable, else replaced — wherever it stands among the fields.
        for (sent, echoed) in [("client-7", "client-7"), ("has space", "generated-id")] {
            let recorder = Recorder()
            var head = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/refused")
            head.headerFields[HTTPField.Name("x-request-id")!] = sent
            head.headerFields[.contentType] = "application/json"
            recorder.stream = try pair.clientHandler.openStream(head, endStream: true, delegate: recorder)
            try pair.interact()
            #expect(recorder.response?.status.code == 503)
            #expect(recorder.response?.headerFields[HTTPField.Name("x-request-id")!] == echoed)
        }

        let served = Recorder()
        _ = try pair.get("/", recorder: served)
        try pair.interact()
        #expect(served.response?.status == .ok)
        #expect(String(decoding: served.body, as: UTF8.self) == "Hello, world\n")
    }

    @Test("A drained request is reset with NO_ERROR past 1 MiB, or when it has not ended within 10 s")
    func drainBounds() throws {
        let pair = try Pair(responder: EarlyRefuser())
        var request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/refused")
        request.headerFields[.contentType] = "application/json"
        let flooding = Recorder()
        flooding.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: flooding)
        flooding.stream?.sendData(ByteBuffer(repeating: UInt8(ascii: "x"), count: 2 << 20), endStream: false)
        let stalled = Recorder()
        stalled.stream = try pair.clientHandler.openStream(request, endStream: false, delegate: stalled)
        stalled.stream?.sendData(ByteBuffer(string: "{\"first\":"), endStream: false)
        try pair.interact()
        // Both got the whole answer; a reset after it is NO_ERROR: no error on the client's side.
        #expect(flooding.response?.status.code == 503 && flooding.body.count == EarlyRefuser.refusal.body.readableBytes)
        #expect(flooding.closed && flooding.error == nil)
        #expect(stalled.response?.status.code == 503 && !stalled.closed)
        pair.loop.advanceTime(by: .seconds(9))
        try pair.interact()
        #expect(!stalled.closed)
        pair.loop.advanceTime(by: .seconds(1))
        try pair.interact()
        #expect(stalled.closed && stalled.error == nil)
        #expect(pair.serverHandler.openStreamCount == 0)
    }

    @Test("HEAD: the response head ends the stream, an early answer's too; the body written as for GET is dropped")
    func head() throws {
        let pair = try Pair(responder: EarlyRefuser())
        for path in ["/", "/refused"] {
            let recorder = Recorder()
            let request = HTTPRequest(method: .head, scheme: "http", authority: "test", path: path)
            recorder.stream = try pair.clientHandler.openStream(request, endStream: true, delegate: recorder)
            try pair.interact()
            // nghttp2's client resets a HEAD stream that carries DATA (PROTOCOL_ERROR), as curl does.
            #expect(recorder.response?.status.code == (path == "/" ? 200 : 503), "\(path)")
            #expect(recorder.body.isEmpty && recorder.ended && recorder.closed, "\(path)")
            #expect(recorder.error == nil, "\(path): \(String(describing: recorder.error))")
        }
        #expect(pair.serverHandler.openStreamCount == 0)
        let served = Recorder()
        _ = try pair.get("/", recorder: served)
        try pair.interact()
        #expect(String(decoding: served.body, as: UTF8.self) == "Hello, world\n")
    }

}
