import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Real clients against a running gateway", .timeLimit(.minutes(2)))
struct RealClientTests {
    @Test("curl --http2-prior-knowledge -N streams SSE chunks over h2c")
    func curlHTTP2() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let result = try await Subprocess.run(
                "curl",
                [
                    "-sS", "-N", "--http2-prior-knowledge", "-D", "-", "\(fleet.baseURL)/v1/chat/completions",
                    "-H", "content-type: application/json", "-d", chatBody(stream: true, maxTokens: 20),
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("HTTP/2 200"))
            #expect(result.stdout.contains("x-fleet-route: car"))
            let body = try #require(result.stdout.components(separatedBy: "\r\n\r\n").last)
            let payloads = try ssePayloads(body)
            #expect(payloads.count == 23)  // role + 20 tokens + finish + [DONE]
            #expect(payloads.last == "[DONE]")
        }
    }

    @Test("curl over HTTP/1.1 gets the same stream, chunked")
    func curlHTTP1() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let result = try await Subprocess.run(
                "curl",
                [
                    "-sS", "-N", "--http1.1", "-D", "-", "\(fleet.baseURL)/v1/chat/completions",
                    "-H", "content-type: application/json", "-d", chatBody(stream: true, maxTokens: 20),
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("HTTP/1.1 200"))
            #expect(result.stdout.lowercased().contains("transfer-encoding: chunked"))
            let body = try #require(result.stdout.components(separatedBy: "\r\n\r\n").last)
            #expect(try ssePayloads(body).count == 23)
        }
    }

    @Test("curl over HTTP/1.1 gets errors in OpenAI's shape")
    func curlHTTP1Error() async throws {
        try await withFleet(cars: [CarSpec("car-a", slowdown: 0.1)]) { fleet in
            let result = try await Subprocess.run(
                "curl",
                ["-sS", "--http1.1", "-w", "\n%{http_code}", "\(fleet.baseURL)/v1/chat/completions", "-d", "{nope"])
            #expect(result.stdout.hasSuffix("\n400"))
            #expect(result.stdout.contains("\"type\":\"invalid_request_error\""))
        }
    }
}
