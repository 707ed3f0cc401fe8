import NIOCore
import Testing

@testable import FleetProtocol

/// ``SSE/Decoder/Event/payload``'s one-line shape (a slice found with one scan) against the lines
/// walk every other shape takes, and against ``SSE/Decoder/Event/data``, decoded on its own.
@Suite("SSE payload")
struct SSEPayloadTests {
    @Test(
        "An event's payload: one data line sliced as it is, any other shape by its lines",
        arguments: [
            ("data: {\"a\":1}\n\n", "{\"a\":1}"), ("data:x\n\n", "x"), ("data:  x\n\n", " x"),
            ("data: x\r\n\n", "x"), ("data: a\rb\n\n", "a\rb"), ("data:\n\n", ""), ("data: \n\n", ""),
            ("data:\r\n\n", ""), ("data: \r\n\n", ""),
            ("data: a\ndata: b\n\n", "a\nb"), ("event: e\r\ndata: y\r\n\n", "y"), (": comment\n\n", nil),
            ("datax\n\n", nil), ("data\n\n", nil), ("id: 1\n\n", nil), ("\n", nil), ("data: a\n: c\n\n", "a"),
        ] as [(String, String?)])
    func payload(wire: String, expected: String?) throws {
        var decoder = SSE.Decoder()
        let events = try decoder.feed(ByteBuffer(string: wire + "data: next\n\n"))
        #expect(events.count == 2)
        #expect(events.first?.payload.map { String(buffer: $0) } == expected)
        #expect(events.first?.payloadOfLines.map { String(buffer: $0) } == expected)
        #expect(events.last?.payload.map { String(buffer: $0) } == "next")
    }

    @Test("The one-line slice is the lines walk's payload, over random events of every shape")
    func payloadMatchesLines() throws {
        var random = SplitMix64(seed: 19)
        let lines = [
            "data: {\"x\":1}", "data:y", "data:", "data: ", "data:  two", ": comment", "event: e", "id: 7", "retry: 5",
            "data", "dat", "data: a\rb", "data:\r",
        ]
        var oneLine = 0
        for round in 0..<400 {
            var wire = ""
            for _ in 0..<Int(1 + random.next() % 6) {
                for _ in 0..<Int(1 + random.next() % 3) {
                    wire += lines[Int(random.next() % UInt64(lines.count))]
                    wire += random.next() % 3 == 0 ? "\r\n" : "\n"
                }
                wire += "\n"
            }
            var decoder = SSE.Decoder()
            for event in try decoder.feed(ByteBuffer(string: wire)) {
                let payload = event.payload.map { String(buffer: $0) }
                #expect(
                    payload == event.payloadOfLines.map { String(buffer: $0) },
                    "round \(round): \(String(buffer: event.raw).debugDescription)")
                #expect((payload ?? "") == event.data)
                if event.raw.withUnsafeReadableBytes({ SSE.Decoder.singleLinePayload(of: $0) }) != nil { oneLine += 1 }
            }
        }
        #expect(oneLine > 100)  // the fast path was taken, not only the walk
    }

    @Test("An event is a view of the bytes it came in: equal to its bytes, whatever its reader index")
    func view() throws {
        var decoder = SSE.Decoder()
        decoder.append(ByteBuffer(string: "data: a\n\ndata: b\n\n"))
        let first = try #require(try decoder.next())
        let second = try #require(try decoder.next())
        #expect(String(buffer: first.raw) == "data: a\n\n" && String(buffer: second.raw) == "data: b\n\n")
        #expect(second.raw == ByteBuffer(string: "data: b\n\n"))
        #expect(second.payload == ByteBuffer(string: "b"))
        #expect(try decoder.next() == nil && decoder.bufferedBytes == 0)
    }
}

@Suite("SSE decoder buffer")
struct SSEDecoderBufferTests {
    /// helper-128: reads that always end inside an event left bytes pending, and the decoder's buffer
    /// grew by every byte of the stream.
    @Test("Reads that end inside an event: the pending buffer holds what is pending, not the whole stream")
    func boundedWhenReadsSplitEvents() throws {
        var decoder = SSE.Decoder()
        let event = Array(#"data: {"choices":[{"delta":{"content":"token"}}]}"#.utf8) + [10, 10]
        var events = 0
        var largest = 0
        var carry: [UInt8] = []
        for _ in 0..<20_000 {
            // One read: the rest of the last event, one whole event and the start of the next.
            let read = carry + event + event[..<20]
            carry = Array(event[20...])
            decoder.append(ByteBuffer(bytes: read))
            while try decoder.next() != nil { events += 1 }
            largest = max(largest, decoder.pendingStorageCapacity)
        }
        #expect(events == 39_999)
        #expect(largest < 16 * 1024, "the pending buffer's storage reached \(largest) bytes")
    }
}
