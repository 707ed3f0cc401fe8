import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// The hostile car itself: each behaviour reaches a real gateway as scripted.
///
/// The gateway serves on afterwards. What the relay *should* make of forged fields, invalid UTF-8 or data after `[DONE]`
/// is for the relay's own tests; these only pin down the test support.
@Suite("Hostile car behaviours", .timeLimit(.minutes(1)))
struct HostileCarTests {
    @Test(
        "Each behaviour is served on a real tunnel; the gateway then serves an honest car",
        arguments: [
            (.honest, "one two three"), (.eventFlood(count: 5_000), "one two three"), (.invalidUTF8, nil),
            (.forgedSSEFields, nil), (.forgedError, nil), (.dataAfterDone, nil), (.stallAfterFirstToken, "one"),
            (.liesAboutRates(prefillTokensPerSecond: 1e9, decodeTokensPerSecond: 1e6, slowdown: 2), ""),
        ] as [(HostileCar.Behaviour, String?)])
    func behaviour(_ behaviour: HostileCar.Behaviour, text: String?) async throws {
        try await withFleet { fleet in
            let car = try await fleet.startHostileCar("mallory", behaviour)
            if case .liesAboutRates = behaviour {
                let advertised = try #require(fleet.gateway.core.registry.all().first?.descriptor.models.first)
                #expect(advertised.prefillTokensPerSecond == 1e9 && advertised.decodeTokensPerSecond == 1e6)
            }
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 3))
            let (status, received) = try await withTimeout(.seconds(10)) { () -> (Int?, String) in
                var status: Int?
                var received = ""
                for await event in stream.events {
                    switch event {
                    case .response(let response): status = response.status.code
                    case .data: received = Self.text(stream.body)
                    case .end, .closed: return (status, received)
                    }
                    if case .stallAfterFirstToken = behaviour, received == "one" {
                        stream.reset()
                        return (status, received)
                    }
                }
                return (status, received)
            }
            // Where the relay's policy decides (pass on, repair or refuse), only a clean answer is asked for.
            if let text {
                #expect(status == 200)
                #expect(received.hasPrefix(text), "\(received.prefix(80))")
            } else {
                #expect(status == 200 || status == 502, "\(status.map(String.init) ?? "no answer")")
            }
            #expect(car.jobs == 1)
            try await waitUntil("the car's job stream closed") { car.jobsClosed == 1 }
            car.close()

            let honest = try await fleet.startHostileCar("alice", .honest)
            defer { honest.close() }
            let next = try await client.post("/v1/chat/completions", json: chatBody(stream: false, maxTokens: 3))
                .collect()
            #expect(next.response?.status == .ok)
        }
    }

    /// The generated text of an SSE body (choice 0), event by event.
    static func text(_ body: [UInt8]) -> String {
        var decoder = SSE.Decoder()
        let events = (try? decoder.feed(ByteBuffer(bytes: body))) ?? []
        return events.compactMap { event -> String? in
            var data = event.data
            return data.withUTF8 { try? ChunkScanner.scan(UnsafeRawBufferPointer($0)) }?.choice?.content
        }.joined()
    }
}
