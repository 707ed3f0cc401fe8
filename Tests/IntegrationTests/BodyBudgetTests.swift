import FleetGate
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
            var request = HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: "/v1/chat/completions")
            request.headerFields[.contentType] = "application/json"
            let chunk = ByteBuffer(repeating: UInt8(ascii: " "), count: 40_000)
            // Two open bodies of 40 kB fit; the third would pass 100 kB.
            let first = try await client.send(request, body: chunk, endStream: false)
            let second = try await client.send(request, body: chunk, endStream: false)
            try await waitUntil("two bodies held") { fleet.gateway.core.requestBodyBytesHeld >= 80_000 }
            let third = await (try await client.send(request, body: chunk, endStream: false)).collect()
            #expect(third.response?.status.code == 503)
            #expect(third.body.contains("server_overloaded"))
            #expect(third.response?.headerFields[.retryAfter] == "1")
            first.reset()
            second.reset()
            // Closed streams give their bytes back.
            try await waitUntil("bodies released") { fleet.gateway.core.requestBodyBytesHeld == 0 }
        }
    }
}
