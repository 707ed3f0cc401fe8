import FleetGate
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Testing

@Suite("A car that lies about its rates", .timeLimit(.minutes(2)))
struct LiarCarTests {
    /// Issue #13: a car advertising 1e9 prefill tokens/s while running 55× slower than its class
    /// must lose its traffic once the gateway has seen it work: advertised rates are bounded by the
    /// hardware class and replaced by what the gateway observes.
    @Test("A liar advertising 1e9 tokens/s while 55x slower gets under 20 % of requests after ten")
    func liarLoses() async throws {
        try await withFleet(cars: [CarSpec("honest", hardware: .ai5)]) { fleet in
            let liar = try await fleet.startHostileCar(
                "liar", .liesAboutRates(prefillTokensPerSecond: 1e9, decodeTokensPerSecond: 1e6, slowdown: 55))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func batch(_ count: Int, _ label: String) async throws {
                for round in 0..<(count / 5) {
                    var streams: [RecordingStream] = []
                    for i in 0..<5 {
                        streams.append(
                            try await client.post(
                                "/v1/chat/completions",
                                json: chatBody(stream: true, maxTokens: 2, prompt: "\(label) \(round) \(i)")))
                    }
                    for stream in streams {
                        let result = await stream.collect()
                        #expect(result.response?.status == .ok)
                    }
                }
            }
            try await batch(10, "warm-up")
            let before = liar.jobs
            try await batch(40, "measured")
            let share = Double(liar.jobs - before) / 40
            print("liar car: \(before) of the first 10 requests, \(liar.jobs - before) of the next 40")
            #expect(share < 0.2, "the liar got \(liar.jobs - before) of 40")
        }
    }
}
