import FleetGate
import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

@Suite("Request bodies held at once are bounded", .timeLimit(.minutes(1)))
struct BodyBudgetTests {
    /// Issue #18: per-request body limits alone let many open bodies add up; the gateway bounds
    /// the bytes it holds over all requests and sheds the rest with 503 `server_overloaded`.
    @Test("Past the gateway-wide body budget a request gets 503 server_overloaded with Retry-After")
    func budget() async throws {
        try await withFleet(configure: { $0.limits.maxBufferedBodyBytes = 100_000 }) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var request = HTTPRequest(
                method: .post, scheme: "http", authority: "127.0.0.1", path: "/v1/chat/completions")
            request.headerFields[.contentType] = "application/json"
            let chunk = ByteBuffer(repeating: UInt8(ascii: " "), count: 40_000)
            // Two open bodies of 40 kB fit; the third would pass 100 kB.
            let first = try await client.send(request, body: chunk, endStream: false)
            let second = try await client.send(request, body: chunk, endStream: false)
            try await waitUntil("two bodies held") { fleet.gateway.core.requestBodyBytesHeld >= 80_000 }
            let third = try await Self.answerBeforeEnd(try await client.send(request, body: chunk, endStream: false))
            #expect(third.response?.status.code == 503)
            #expect(third.body.contains("server_overloaded"))
            #expect(third.response?.headerFields[.retryAfter] == "1")
            first.reset()
            second.reset()
            // Closed streams give their bytes back.
            try await waitUntil("bodies released") { fleet.gateway.core.requestBodyBytesHeld == 0 }
        }
    }

    /// The answer to a request whose body has not ended: read to the answer's end, then the client
    /// ends its body (the gateway drains it) and the stream closes.
    static func answerBeforeEnd(
        _ stream: RecordingStream, beforeEnding: () async throws -> Void = {}
    ) async rethrows -> (response: HTTPResponse?, body: String, error: HTTPStreamError?) {
        var response: HTTPResponse?
        let bound = stream.bound()
        defer { bound.cancel() }
        for await event in stream.events {
            if case .response(let head) = event { response = head }
            if case .end = event { break }
        }
        try await beforeEnding()
        stream.send(ByteBuffer(), endStream: true)
        let rest = await stream.collect()
        return (response, String(decoding: stream.body, as: UTF8.self), rest.error)
    }

    /// 0 bytes: the headers alone, and nothing after them (the deadline is armed after the read).
    @Test(
        "A body that does not arrive in time gets the whole 408, then its stream ends without an error",
        arguments: [40_000, 0])
    func bodyTimeout(bytes: Int) async throws {
        try await withFleet(configure: { $0.limits.bodyTimeout = .milliseconds(300) }) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var request = HTTPRequest(
                method: .post, scheme: "http", authority: "127.0.0.1", path: "/v1/chat/completions")
            request.headerFields[.contentType] = "application/json"
            let started = try await client.send(
                request, body: ByteBuffer(repeating: UInt8(ascii: " "), count: bytes), endStream: false)
            // A reset with the answer overtook its body in nghttp2's queue: the head arrived, then CANCEL.
            let result = try await Self.answerBeforeEnd(started) {
                // Answered: the body held so far is let go now, not when the client ends it (helper-57:
                // a drained 408 kept its share of the gateway-wide budget as long as its stream lived).
                try await waitUntil("body released") { fleet.gateway.core.requestBodyBytesHeld == 0 }
            }
            #expect(result.response?.status.code == 408)
            #expect(result.body.contains("\"error\"") && result.body.hasSuffix("}"), "\(result.body)")
            #expect(result.error == nil)
        }
    }
}
