import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// helper-85: clients that read slowly held the cars' slots, since a car's stream credit came back only
/// as its client drained. The gateway now holds a slow client's answer, up to a bound a stream and
/// over all, so the car finishes its job and serves others.
@Suite("A slow client does not hold its car")
struct SlowClientTests {
    @Test(
        "A slow client's answer is held in the gateway: the car's job ends and its slot is free; past the stream's bound the car waits"
    )
    func heldAnswer() async throws {
        let perStream = 256 * 1024
        try await withFleet(
            configure: { $0.limits.maxBufferedAnswerBytesPerStream = perStream }
        ) { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.01))  // 5,000 tok/s
            let inFlight = { fleet.gateway.core.registry.all().first?.inFlight ?? -1 }
            let window = 16 * 1024
            // About 200 bytes of SSE a token: 800 tokens are ≈ 160 KB, within the stream's bound.
            let first = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { first.close() }
            let short = try await first.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 800), mode: .manual)
            try await waitUntil("the car finished the slow client's job") {
                car.engine.tokensGenerated == 800 && inFlight() == 0
            }
            #expect(short.receivedBytes <= window + 1024, "the client read \(short.receivedBytes) bytes")
            // The job's end can reach the gateway after the car counts it done (CI once read the held bytes
            // 391 short: the last chunk and `[DONE]` on their way): read them once they stop growing.
            try await waitUntil("the held answer whole") {
                let before = fleet.gateway.core.answerBytesHeld
                try await Task.sleep(for: .milliseconds(200))
                return fleet.gateway.core.answerBytesHeld == before
            }
            let heldForFirst = fleet.gateway.core.answerBytesHeld
            #expect(heldForFirst > 40_000 && heldForFirst <= perStream, "held \(heldForFirst)")
            let gauge = try await fleet.series("fleet_buffered_bytes", with: ["kind": "answer"])
            #expect(gauge.map(\.value) == [Double(heldForFirst)])

            // 8,000 tokens (≈ 1.6 MB) are past the bound: the car waits for this client, holding its slot.
            let second = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { second.close() }
            let long = try await second.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 8_000), mode: .manual)
            try await waitUntil("the engine paused") {
                let before = car.engine.tokensGenerated
                try await Task.sleep(for: .milliseconds(200))
                return before > 800 && car.engine.tokensGenerated == before
            }
            #expect(inFlight() == 1)
            let generated = car.engine.tokensGenerated - 800
            #expect(generated < 4_000, "the engine ran ahead by \(generated) tokens")
            let held = fleet.gateway.core.answerBytesHeld
            #expect(held > heldForFirst && held <= heldForFirst + perStream, "held \(held)")

            // Both clients catch up and lose nothing; then nothing is held.
            short.resumeReading()
            long.resumeReading()
            for (stream, tokens) in [(short, 800), (long, 8_000)] {
                let result = await stream.collect()
                let decoded = try chunks(try ssePayloads(result.body))
                #expect(
                    decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == tokens)
            }
            try await waitUntil("nothing held") { fleet.gateway.core.answerBytesHeld == 0 }
            #expect(inFlight() == 0)
        }
    }

    /// helper-90: an HTTP/1.1 stream closed when its end was queued, so its held answer could not be counted;
    /// it now closes when the end is written (``HTTP1ServerStreamHandler``), and an HTTP/1.1 reader is held
    /// for as an HTTP/2 one is. helper-93: a drain then closed the connection with the held answer unsent
    /// (NIO's pipelining helper closes a connection between requests at once); ``HTTP1QuiesceHandler``.
    @Test(
        "An HTTP/1.1 client that does not read has its answer held too: the car's job ends, and the client then reads all of it, through a drain too",
        arguments: [false, true]
    )
    func heldAnswerHTTP1(drain: Bool) async throws {
        let perStream = 8 << 20
        try await withFleet(
            configure: { $0.limits.maxBufferedAnswerBytesPerStream = perStream }
        ) { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.002))  // 25,000 tok/s
            let inFlight = { fleet.gateway.core.registry.all().first?.inFlight ?? -1 }
            // 20,000 tokens are ≈ 4 MB of SSE: within the stream's bound here, past what a client's 4 KiB
            // receive buffer, the gateway's socket (up to ~1.6 MB on loopback) and NIO's 64 KiB take.
            let tokens = 20_000
            let client = try await RawConnection.connect(port: fleet.clientPort, receiveBuffer: 4096, reading: false)
            defer { client.channel.close(promise: nil) }
            let body = chatBody(stream: true, maxTokens: tokens)
            try await client.send(
                Array(
                    ("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                        + "content-length: \(body.utf8.count)\r\n\r\n" + body).utf8))
            try await waitUntil("the car finished the job of a client that reads nothing") {
                car.engine.tokensGenerated == tokens && inFlight() == 0
            }
            // The answer's end is queued (the request is counted), not written: its bytes are still held.
            try await waitUntil("the gateway ended the request") {
                EdgeTests.served(fleet, route: "/v1/chat/completions") == 1
            }
            let held = fleet.gateway.core.answerBytesHeld
            #expect(held > 1_000_000 && held <= perStream, "held \(held)")

            @Sendable func drainIfAsked() async { if drain { await fleet.shutDownGracefully() } }
            async let shutdown: Void = drainIfAsked()
            if drain {
                try await waitUntil("draining") { !fleet.gateway.readiness.isReady }
                try await Task.sleep(for: .milliseconds(300))  // the connection was closed at once
            }
            try await client.resumeReading()
            let end = Array("\r\n0\r\n\r\n".utf8)
            // 4 MB through a 4 KiB receive buffer takes ~1 s here; once, in a full integration run (session 37),
            // more than the 10 s this wait had. A stalled answer would still fail it: the stall timer closes at 60 s.
            try await waitUntil(timeout: .seconds(30), "the whole answer arrived") {
                client.received.suffix(end.count).elementsEqual(end)
            }
            let response = client.received
            let headEnd = try #require(
                response.indices.first { response[$0...].starts(with: Array("\r\n\r\n".utf8)) }, "a head")
            #expect(response.starts(with: Array("HTTP/1.1 200".utf8)))
            let answer = try Self.dechunked(response[(headEnd + 4)...])
            let decoded = try chunks(try ssePayloads(answer))
            #expect(decoded.flatMap(\.choices).compactMap { $0.delta?.content }.filter { !$0.isEmpty }.count == tokens)
            try await waitUntil("nothing held once the answer is written") { fleet.gateway.core.answerBytesHeld == 0 }
            await shutdown
        }
    }

    /// helper-90: the hold counted the car's bytes, and `/v1/responses` events are ~1.25× the car's chunks, so
    /// that API's bound was loose by as much. It now counts the bytes the client's stream was given.
    @Test("A slow client's held bytes are those queued for it: /v1/responses events, larger than the car's chunks")
    func heldResponses() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.01))  // 5,000 tok/s
            let inFlight = { fleet.gateway.core.registry.all().first?.inFlight ?? -1 }
            let window = 16 * 1024
            let client = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: window)
            defer { client.close() }
            let tokens = 4_000
            let stream = try await client.post(
                "/v1/responses",
                json: #"{"model":"fleet-8b","input":"Hello, fleet","stream":true,"max_output_tokens":\#(tokens)}"#,
                mode: .manual)
            try await waitUntil("the car finished the slow client's job") {
                car.engine.tokensGenerated == tokens && inFlight() == 0
            }
            // The answer's last events are queued when the gateway ends the request.
            try await waitUntil("the gateway ended the request") {
                EdgeTests.served(fleet, route: "/v1/responses") == 1
            }
            try await Task.sleep(for: .milliseconds(100))  // the rest of the loop's turn that counted it
            let held = fleet.gateway.core.answerBytesHeld
            let read = stream.receivedBytes
            stream.resumeReading()
            let result = await stream.collect()
            #expect(result.body.contains("response.incomplete"), "\(result.body.suffix(200))")
            // Everything the client had not read was queued for it; all but the stream's first 64 KiB (its
            // high-water mark, passed while it was writable) and one read's part is held.
            let queued = result.body.utf8.count - read
            #expect(held <= queued && held >= queued - 64 * 1024 - 16 * 1024, "held \(held) of \(queued) queued")
        }
    }

    /// helper-93: a client that left with its held answer unwritten was audited and counted as a whole 200.
    @Test("A client that leaves before its held answer is written is counted as lost; one that reads it all is not")
    func heldAnswerLost() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("car-a", hardware: .ai5, slowdown: 0.01))  // 5,000 tok/s
            let lost = {
                try await fleet.metrics().split(separator: "\n")
                    .first { $0.hasPrefix("fleet_held_answers_lost_total ") }.map {
                        String($0.split(separator: " ")[1])
                    }
            }
            for leaves in [false, true] {
                let client = try await RecordingClient.connect(port: fleet.clientPort, initialWindow: 16 * 1024)
                defer { client.close() }
                let before = car.engine.tokensGenerated
                let stream = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 800), mode: .manual)
                try await waitUntil("the car finished the job") { car.engine.tokensGenerated == before + 800 }
                try await waitUntil("the gateway ended the request") {
                    EdgeTests.served(fleet, route: "/v1/chat/completions") == (leaves ? 2 : 1)
                }
                #expect(fleet.gateway.core.answerBytesHeld > 40_000)
                if leaves {
                    client.close()
                } else {
                    stream.resumeReading()
                    _ = await stream.collect()
                }
                try await waitUntil("nothing held") { fleet.gateway.core.answerBytesHeld == 0 }
                #expect(try await lost() == (leaves ? "1" : "0"), "\(leaves ? "left" : "read all")")
            }
        }
    }

    /// An HTTP/1.1 chunked body (the bytes after the head), its chunks joined.
    static func dechunked(_ bytes: ArraySlice<UInt8>) throws -> String {
        var rest = bytes
        var body: [UInt8] = []
        while true {
            let lineEnd = try #require(rest.firstIndex(of: UInt8(ascii: "\r")), "a chunk size line")
            let size = try #require(Int(String(decoding: rest[..<lineEnd], as: UTF8.self), radix: 16), "a hex size")
            if size == 0 { return String(decoding: body, as: UTF8.self) }
            let start = lineEnd + 2
            try #require(rest.endIndex >= start + size + 2, "a whole chunk")
            body += rest[start..<start + size]
            rest = rest[(start + size + 2)...]
        }
    }
}
