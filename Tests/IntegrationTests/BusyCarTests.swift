import FleetAgent
import FleetTesting
import Foundation
import HTTPTypes
import Testing

@Suite("Cars that refuse for want of a slot", .timeLimit(.minutes(1)))
struct BusyCarTests {
    @Test(
        "Every car tried refusing its stream (no free slot) is a busy zone: 503 server_overloaded with Retry-After, not 502 (helper-107)"
    )
    func refusedEverywhere() async throws {
        try await withFleet { fleet in
            // Two cars whose every slot is taken behind the gateway's back (another replica's jobs, a
            // digest a moment old): each refuses the stream (REFUSED_STREAM) though the gateway counts it free.
            for name in ["full-a", "full-b"] {
                let car = try await fleet.startCar(CarSpec(name))
                while car.car.state.acquireSlot() {}
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let answer = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5))
                .collect()
            #expect(answer.response?.status.code == 503, "\(answer.body.prefix(300))")
            #expect(answer.body.contains("server_overloaded"), "\(answer.body.prefix(300))")
            #expect(answer.response?.headerFields[.retryAfter] != nil)
        }
    }
}
