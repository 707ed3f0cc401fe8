import FleetProtocol
import NIOCore
import Testing

@Suite("SSE codec")
struct SSETests {
    @Test("Events split across reads are reassembled, with their raw bytes")
    func splitAcrossReads() throws {
        var decoder = SSE.Decoder()
        let wire = "data: {\"a\":1}\n\ndata: [DONE]\n\n"
        var events: [SSE.Decoder.Event] = []
        for byte in wire.utf8 { events += try decoder.feed(ByteBuffer(bytes: [byte])) }
        #expect(events.map(\.data) == ["{\"a\":1}", "[DONE]"])
        #expect(String(buffer: events[0].raw) == "data: {\"a\":1}\n\n")
    }

    /// The decoder's definition on plain arrays: events end at a blank line; an event (whole or
    /// still partial) over the limit fails the read, after the events completed before it.
    private struct ReferenceDecoder {
        var pending: [UInt8] = []
        let limit: Int
        mutating func feed(_ read: [UInt8]) -> (events: [String], failed: Bool) {
            self.pending += read
            var events: [String] = []
            while let end = self.pending.indices.dropLast().first(where: {
                self.pending[$0] == 0x0A && self.pending[$0 + 1] == 0x0A
            }) {
                guard end + 2 <= self.limit else { return (events, true) }
                events.append(String(decoding: self.pending[..<(end + 2)], as: UTF8.self))
                self.pending.removeFirst(end + 2)
            }
            return (events, self.pending.count > self.limit)
        }
    }

    @Test(
        "feed, append with next, and take(while:) give the reference's events over random reads, up to an oversized event"
    )
    func matchesReference() {
        var random = SplitMix64(seed: 5)
        for round in 0..<500 {
            var wire = ""
            for _ in 0..<Int(random.next() % 6) {
                wire +=
                    "data: " + String(repeating: "y", count: Int(random.next() % 70))
                    + (random.next() % 3 == 0 ? "\n" : "\n\n")
            }
            let bytes = Array(wire.utf8)
            var cuts = Set((0..<Int(random.next() % 5)).map { _ in Int(random.next() % UInt64(bytes.count + 1)) })
            cuts.insert(bytes.count)
            var reference = ReferenceDecoder(limit: 64)
            var fed = SSE.Decoder(maxEventBytes: 64)
            var stepped = SSE.Decoder(maxEventBytes: 64)
            var taken = SSE.Decoder(maxEventBytes: 64)
            var from = 0
            for cut in cuts.sorted() {
                let read = Array(bytes[from..<cut])
                from = cut
                let expected = reference.feed(read)
                var fedEvents: [String] = []
                var fedFailed = false
                do {
                    fedEvents = try fed.feed(ByteBuffer(bytes: read)).map { String(buffer: $0.raw) }
                } catch {
                    fedEvents = error.completed.map { String(buffer: $0.raw) }
                    fedFailed = true
                }
                var steppedEvents: [String] = []
                var steppedFailed = false
                stepped.append(ByteBuffer(bytes: read))
                do {
                    while let event = try stepped.next() { steppedEvents.append(String(buffer: event.raw)) }
                } catch {
                    steppedFailed = true
                }
                // take(while:) for runs the closure accepts (about two in three), next() for the rest: the
                // same events, each run one view of the events it took, back to back.
                var takenEvents: [String] = []
                var takenFailed = false
                taken.append(ByteBuffer(bytes: read))
                while true {
                    var accepted: [String] = []
                    let run = taken.take { raw in
                        guard random.next() % 3 != 0 else { return false }
                        accepted.append(String(decoding: raw, as: UTF8.self))
                        return true
                    }
                    #expect((run.map { String(buffer: $0) } ?? "") == accepted.joined(), "round \(round)")
                    takenEvents += accepted
                    do {
                        guard let event = try taken.next() else { break }
                        takenEvents.append(String(buffer: event.raw))
                    } catch {
                        takenFailed = true
                        break
                    }
                }
                #expect(takenEvents == expected.events && takenFailed == expected.failed, "round \(round)")
                #expect(fedEvents == expected.events && fedFailed == expected.failed, "round \(round)")
                #expect(steppedEvents == expected.events && steppedFailed == expected.failed, "round \(round)")
                if expected.failed { break }
            }
        }
    }

    @Test("Multi-line data joins with newlines; CRLF and comments are tolerated")
    func multiLine() throws {
        var decoder = SSE.Decoder()
        let events = try decoder.feed(ByteBuffer(string: ": comment\r\ndata: one\r\ndata:two\n\n"))
        #expect(events.map(\.data) == ["one\ntwo"])
    }

    /// sse-starlette (behind llama-cpp-python's and other FastAPI servers) ends its lines with CRLF:
    /// its events end at `\r\n\r\n`, which the decoder did not see (it waited for `\n\n`, up to the
    /// event bound).
    @Test("Events whose lines end in CRLF, or a mix, end at their blank line, however the bytes are split")
    func crlfEvents() throws {
        let stream =
            "data: {\"a\":1}\r\n\r\n: ping\r\n\r\ndata: two\r\ndata: lines\r\n\ndata: lf\n\r\ndata: [DONE]\r\n\r\n"
        let expected = ["{\"a\":1}", "", "two\nlines", "lf", "[DONE]"]
        var whole = SSE.Decoder()
        #expect(try whole.feed(ByteBuffer(string: stream)).map(\.data) == expected)
        #expect(whole.bufferedBytes == 0)
        let bytes = Array(stream.utf8)
        for cut in 1..<bytes.count {  // every split, a CR and its LF apart included
            var decoder = SSE.Decoder()
            var events = try decoder.feed(ByteBuffer(bytes: bytes[..<cut]))
            events += try decoder.feed(ByteBuffer(bytes: bytes[cut...]))
            #expect(events.map(\.data) == expected, "cut \(cut)")
        }
        // One byte at a time: the search resumes where it stopped (it is linear in the bytes).
        var stepped = SSE.Decoder()
        var steppedEvents: [SSE.Decoder.Event] = []
        for byte in bytes { steppedEvents += try stepped.feed(ByteBuffer(bytes: [byte])) }
        #expect(steppedEvents.map(\.data) == expected)
        // The payload a relay reads, without the CR.
        var decoder = SSE.Decoder()
        let first = try decoder.feed(ByteBuffer(string: "data: {\"a\":1}\r\n\r\n"))
        #expect(first.first?.payload.map { String(buffer: $0) } == "{\"a\":1}")
        // Bounded as before: a CRLF event over the limit is refused.
        var small = SSE.Decoder(maxEventBytes: 16)
        #expect(throws: SSE.Decoder.TooLarge.self) {
            _ = try small.feed(ByteBuffer(string: "data: " + String(repeating: "x", count: 20) + "\r\n\r\n"))
        }
    }

    @Test("An event larger than the limit is an error, not unbounded growth")
    func tooLarge() {
        var decoder = SSE.Decoder(maxEventBytes: 64)
        #expect(throws: SSE.Decoder.TooLarge.self) {
            _ = try decoder.feed(ByteBuffer(string: "data: " + String(repeating: "x", count: 100)))
        }
    }

    /// Fuzzer findings (issue #20): a whole oversized event in one read passed; events completed
    /// before an oversized one in the same read were dropped.
    @Test("An oversized event is refused however it arrives, after the events completed before it")
    func tooLargeInOneRead() {
        var decoder = SSE.Decoder(maxEventBytes: 64)
        let wire = "data: {\"a\":1}\n\n" + "data: " + String(repeating: "x", count: 100) + "\n\n"
        do {
            _ = try decoder.feed(ByteBuffer(string: wire))
            Issue.record("a complete 108-byte event passed a 64-byte limit")
        } catch {
            #expect(error.completed.map(\.data) == ["{\"a\":1}"])
        }
    }

    @Test("Encoding produces one data line and a blank line")
    func encode() {
        #expect(String(buffer: SSE.event("{}")) == "data: {}\n\n")
    }
}

@Suite("OpenAI types and synthetic text")
struct OpenAITypesTests {
    @Test("Message content may be a string, text parts or null")
    func contentForms() throws {
        let json = """
            {"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"},{"type":"text","text":"c"}]},{"role":"assistant","content":null}],"stop":"x","max_completion_tokens":3}
            """
        let request = try JSON.decodeRequest(CompletionRequest.self, from: ByteBuffer(string: json))
        #expect(request.messages?.map(\.content) == ["a", "bc", ""])
        #expect(request.stop?.values == ["x"])
        #expect(request.outputLimit == 3)
    }

    @Test(
        "Decoding errors name the field and never echo values",
        arguments: [
            ("{\"messages\":[]}", "model"),
            ("{\"model\":5}", "model"),
        ])
    func decodingErrors(json: String, param: String) {
        #expect(throws: APIError.self) {
            _ = try JSON.decodeRequest(CompletionRequest.self, from: ByteBuffer(string: json))
        }
        do { _ = try JSON.decodeRequest(CompletionRequest.self, from: ByteBuffer(string: json)) } catch {
            #expect(error.param == param)
            #expect(error.status == 400)
        }
    }

    @Test("A prompt's description shows its size, never its text")
    func promptRedacted() {
        let prompt = Prompt("my secret medical question")
        #expect(!"\(prompt)".contains("secret"))
        #expect(!String(reflecting: prompt).contains("secret"))
        #expect("\(prompt)".contains("26 bytes"))
    }

    @Test("Synthetic text is a pure function of seed and index")
    func syntheticDeterministic() {
        let a = (0..<50).map { SyntheticText.token(seed: 42, index: $0) }
        let b = (0..<50).map { SyntheticText.token(seed: 42, index: $0) }
        let c = (0..<50).map { SyntheticText.token(seed: 43, index: $0) }
        #expect(a == b)
        #expect(a != c)
        #expect(Set(a).count > 10)
    }

    @Test(
        "Per-stream decode rate follows the profile's aggregate ceiling",
        arguments: [
            (HardwareClass.ai5, 1, 50.0), (.ai5, 8, 135.0 / 8), (.hw4, 2, 15.0), (.hw3, 1, 30.0),
        ])
    func decodeRates(hardware: HardwareClass, streams: Int, expected: Double) {
        #expect(abs(HardwareProfile.of(hardware).decodeRate(activeStreams: streams) - expected) < 1e-9)
    }
}

@Suite("Byte search")
struct ByteSearchTests {
    @Test(
        "Finds needles anywhere, including overlapping prefixes and the very end",
        arguments: [
            ("abc", "c", 2), ("aab", "ab", 1), ("xx\n\n", "\n\n", 2), ("abc", "abcd", -1), ("", "a", -1),
            ("a\"content\":\"x", "\"content\":\"", 1),
        ])
    func search(haystack: String, needle: String, expected: Int) {
        let found = Array(haystack.utf8).withUnsafeBytes { h in
            Array(needle.utf8).withUnsafeBytes { SSE.search($0, in: h) }
        }
        #expect(found == (expected < 0 ? nil : expected))
    }
}
