import FleetGate
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Past capacity the gateway sheds, and loses nothing it admitted", .timeLimit(.minutes(1)))
struct OverloadTests {
    /// Issue #19: overload is answered with 503 `server_overloaded` and `Retry-After` (not
    /// `no_capacity_in_zone`, which would tell the client its zone is empty), before the body is
    /// read; every stream that was admitted completes with all its tokens and `[DONE]`.
    @Test("40 streams at once on one loop admitting 8: the rest get 503 server_overloaded with Retry-After")
    func sheds() async throws {
        let log = CapturedLog()
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 4)], configure: { $0.limits.maxInFlightPerEventLoop = 8 }, log: log
        ) { fleet in
            // One connection: every stream is on the same event loop.
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var streams: [RecordingStream] = []
            for i in 0..<40 {
                streams.append(
                    try await client.post(
                        "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 16, prompt: "overload \(i)")))
            }
            var admitted = 0
            var shed = 0
            for stream in streams {
                let collected = await stream.collect()
                let status = collected.response?.status.code
                if status == 200 {
                    admitted += 1
                    let result = streamResult(collected)
                    #expect(result.done, "an admitted stream ended without [DONE]")
                    #expect(result.errorCode == nil, "an admitted stream failed: \(result.errorCode ?? "")")
                    #expect(!result.text.isEmpty)
                } else {
                    shed += 1
                    #expect(status == 503)
                    #expect(collected.body.contains("\"server_overloaded\""), "\(collected.body)")
                    #expect(collected.response?.headerFields[.retryAfter] == "1")
                }
            }
            #expect(admitted >= 8, "the limit admits 8 at once, and more as they finish")
            #expect(shed > 0, "40 streams at once on a loop admitting 8 must shed some")
            #expect(admitted + shed == 40)
            // Each refusal is counted.
            let metrics = try await DashboardTests.admin(fleet, "/metrics").1
            #expect(metrics.contains("fleet_requests_shed_total{reason=\"in_flight\"} \(shed)"))
            // In the log, the refusals are an episode (ShedReport): a warning as it starts (and a notice
            // 10 s after the last refusal with them all, which ShedReportTests checks); no line each.
            try await waitUntil(timeout: .seconds(5), "the episode's start") {
                !log.matching("Event loop overloaded: refusing new requests 503 server_overloaded").isEmpty
            }
            let started = log.matching("Event loop overloaded: refusing new requests 503 server_overloaded")
            #expect(started.count == 1 && started.first?.level == .warning, "\(started)")
            #expect(started.first?.metadata["fleet.reason"] == "in_flight")
            #expect(started.first.flatMap { $0.metadata["fleet.refused"] }.flatMap { Int("\($0)") } ?? 0 > 0)
            let served = log.matching("Request served")
            #expect(served.count == admitted, "\(served.count) lines for \(admitted) admitted streams")
            #expect(!served.contains { $0.metadata["fleet.status"] == "503" })
        }
    }

    @Test("With CORS on, a browser page's refusals over HTTP/2 carry its CORS fields, so it can read them")
    func shedsWithCORS() async throws {
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 4)],
            configure: {
                $0.limits.maxInFlightPerEventLoop = 2
                $0.auth.corsOrigins = ["https://app.example.com"]
            }
        ) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var headers = HTTPFields()
            headers[.origin] = "https://app.example.com"
            var streams: [RecordingStream] = []
            for i in 0..<12 {
                streams.append(
                    try await client.post(
                        "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 8, prompt: "cors \(i)"),
                        headers: headers))
            }
            var shed = 0
            for stream in streams {
                let collected = await stream.collect()
                #expect(collected.response?.headerFields[.accessControlAllowOrigin] == "https://app.example.com")
                if collected.response?.status.code == 503 {
                    shed += 1
                    #expect(collected.body.contains("\"server_overloaded\""))
                    #expect(collected.response?.headerFields[.retryAfter] == "1")
                } else {
                    #expect(streamResult(collected).done)
                }
            }
            #expect(shed > 0, "12 streams at once on a loop admitting 2 must shed some")
        }
    }
}
