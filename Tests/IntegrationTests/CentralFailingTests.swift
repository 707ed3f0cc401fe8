import FleetGate
import FleetTesting
import HTTPTypes
import Logging
import NIOCore
import Synchronization
import Testing

/// helper-131: a central endpoint that listed its models and answered every completion 500 was taken out
/// and probed back in each second, without a log line; its clients were told `x-should-retry: false`
/// in between, and the audit lines of the failures said `fleet.route=-` (helper-136: and their 502s had no
/// `x-fleet-route`).
@Suite("A failing central endpoint")
struct CentralFailingTests {
    static let answer =
        #"{"id":"c","object":"chat.completion","created":1,"model":"fleet-8b","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#

    @Test("Out after failing, for a time its probe cannot cut short; refusals say when to retry; the log names it")
    func ejected() async throws {
        let script = CannedCentral.Script()
        script.answers.withLock { $0 = [(500, #"{"error":{"message":"boom","type":"server_error"}}"#)] }
        let central = try await CannedCentral.start(script)
        defer { central.channel.close(promise: nil) }
        let log = CapturedLog()
        try await withFleet(
            configure: { $0.central.endpoints = [.init(region: "eu-west", baseURL: central.baseURL)] }, log: log
        ) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func post() async throws -> RecordingStream.Collected {
                try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2)).collect()
            }
            for _ in 0..<CentralDirectory.failuresToEject {
                let failed = try await post().response
                #expect(failed?.status.code == 502)
                // Where it failed, as the audit line says (helper-136: the 502 had no `x-fleet-route`).
                #expect(failed?.headerFields[HTTPField.Name("x-fleet-route")!] == "central")
                #expect(failed?.headerFields[HTTPField.Name("x-fleet-region")!] == "eu-west")
            }
            // Out for a second: refused, retryable, and told when.
            let refused = try await post()
            #expect(refused.response?.status.code == 503)
            #expect(refused.body.contains("no_capacity_in_zone"), "\(refused.body)")
            #expect(refused.response?.headerFields[.retryAfter] == "1")
            #expect(refused.response?.headerFields[HTTPField.Name("x-should-retry")!] == nil)
            // Refused before any attempt: routed nowhere, so no route.
            #expect(refused.response?.headerFields[HTTPField.Name("x-fleet-route")!] == nil)
            let failed = log.matching("Request served").filter { $0.metadata["fleet.status"] == "502" }
            #expect(failed.count == 3)
            #expect(
                failed.allSatisfy {
                    $0.metadata["fleet.route"] == "central" && $0.metadata["fleet.region"] == "eu-west"
                })
            let out = log.matching("Central endpoint failing; out of rotation")
            try #require(out.count == 1)
            #expect(out[0].level == .warning)
            #expect(out[0].metadata["fleet.central"]?.description == central.baseURL)
            #expect(out[0].metadata["error.type"] == "status_5xx")
            #expect(out[0].metadata["fleet.central.out_seconds"] == "1")
            // Back after its time (its probe, every second), failing again: out twice as long.
            try await waitUntil(timeout: .seconds(5), "central probed back in") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            for _ in 0..<CentralDirectory.failuresToEject { _ = try await post() }
            let again = log.matching("Central endpoint failing; out of rotation")
            #expect(again.last?.metadata["fleet.central.out_seconds"] == "2")
            #expect(try await post().response?.headerFields[.retryAfter] == "2")
            // Mended: served once back, and the log says so.
            script.answers.withLock { $0 = [(200, Self.answer)] }
            try await waitUntil(timeout: .seconds(6), "central probed back in") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            #expect(try await post().response?.status == .ok)
            let back = log.matching("Central endpoint serves again after failing")
            #expect(back.count == 1 && back.first?.metadata["fleet.central.ejections"] == "2")
        }
    }
}
