import FleetProtocol
import NIOCore
import Testing

/// `take(while:)` against `next()` alone on the shapes `matchesReference` does not
/// generate — CRLF, a mix, a lone CR, comments, several lines, events over the bound (whole and still
/// partial) — over every kind of cut, with declines at random; and the scan offset it leaves behind.
@Suite("SSE take(while:) differential")
struct SSETakeDifferentialTests {
    private static func wire(_ random: inout SplitMix64, limit: Int) -> [UInt8] {
        var wire = ""
        for _ in 0..<Int(random.next() % 10) {
            let body = String(repeating: "y", count: Int(random.next() % UInt64(limit + 8)))
            switch random.next() % 9 {
            case 0: wire += "data: " + body + "\r\n\r\n"
            case 1: wire += "data: " + body + "\r\n\n"
            case 2: wire += "data: " + body + "\n\r\n"
            case 3: wire += ": ping\r\n\r\n"
            case 4: wire += "data: a\rb" + body + "\n\n"  // a lone CR is not a line end
            case 5: wire += "event: x\r\ndata: " + body + "\ndata: z\r\n\r\n"
            case 6: wire += "data: " + body + "\r\r\n\n"  // CR CR LF: not blank
            case 7: wire += "data: " + body + "\n"  // the event continues
            default: wire += "data: " + body + "\n\n"
            }
        }
        if random.next() % 3 == 0 { wire += "data: " + String(repeating: "p", count: Int(random.next() % 90)) }
        return Array(wire.utf8)
    }

    private static func cuts(_ random: inout SplitMix64, _ count: Int) -> [Int] {
        var cuts: Set<Int> = [count]
        switch random.next() % 3 {
        case 0: cuts.formUnion(0...count)  // a byte a read
        default:
            for _ in 0..<Int(random.next() % 8) { cuts.insert(Int(random.next() % UInt64(count + 1))) }
        }
        return cuts.sorted()
    }

    @Test("take(while:) then next() gives next()'s events and failure, for every shape and cut (seeded)")
    func sameAsNext() {
        var random = SplitMix64(seed: 21)
        var taken = 0
        for round in 0..<1_000 {
            let limit = 16 + Int(random.next() % 64)
            let bytes = Self.wire(&random, limit: limit)
            let cuts = Self.cuts(&random, bytes.count)
            var plain = SSE.Decoder(maxEventBytes: limit)
            var fast = SSE.Decoder(maxEventBytes: limit)
            var plainEvents: [String] = []
            var fastEvents: [String] = []
            var plainFailed = false
            var fastFailed = false
            var from = 0
            for cut in cuts {
                let read = ByteBuffer(bytes: bytes[from..<cut])
                from = cut
                if !plainFailed {
                    plain.append(read)
                    do { while let event = try plain.next() { plainEvents.append(String(buffer: event.raw)) } } catch {
                        plainFailed = true
                    }
                }
                if !fastFailed {
                    fast.append(read)
                    while true {
                        var accepted: [String] = []
                        // Take several times in a row sometimes (the relay does when nothing consumed between).
                        for _ in 0..<Int(1 + random.next() % 2) {
                            var these: [String] = []
                            let run = fast.take { raw in
                                guard random.next() % 4 != 0 else { return false }
                                these.append(String(decoding: raw, as: UTF8.self))
                                return true
                            }
                            #expect((run.map { String(buffer: $0) } ?? "") == these.joined(), "round \(round)")
                            #expect((run == nil) == these.isEmpty, "round \(round)")
                            accepted += these
                        }
                        taken += accepted.count
                        fastEvents += accepted
                        do {
                            guard let event = try fast.next() else { break }
                            fastEvents.append(String(buffer: event.raw))
                        } catch {
                            fastFailed = true
                            break
                        }
                    }
                }
                #expect(fastEvents == plainEvents && fastFailed == plainFailed, "round \(round) cut \(cut)")
                #expect(fast.bufferedBytes == plain.bufferedBytes || fastFailed, "round \(round) cut \(cut)")
            }
        }
        #expect(taken > 700)
    }

    /// A run stopped on a partial event leaves the scan where that event's unfinished line starts,
    /// relative to the new front: the next read completes it at the right place (a CRLF blank line
    /// split between reads, whose CR was scanned in the earlier one).
    @Test("After a run, a partial CRLF event completes across reads at its blank line")
    func resumeAfterRun() throws {
        var decoder = SSE.Decoder(maxEventBytes: 64)
        decoder.append(ByteBuffer(string: "data: a\n\ndata: bb\n\ndata: c\r\ndata: d\r"))
        let run = decoder.take { _ in true }
        #expect(run.map { String(buffer: $0) } == "data: a\n\ndata: bb\n\n")
        #expect(try decoder.next() == nil)
        decoder.append(ByteBuffer(string: "\n\r"))
        #expect(decoder.take { _ in false } == nil)
        decoder.append(ByteBuffer(string: "\ndata: e\n\n"))
        let rest = decoder.take { _ in true }
        #expect(rest.map { String(buffer: $0) } == "data: c\r\ndata: d\r\n\r\ndata: e\n\n")
    }

    @Test("A run stops before an event over the bound; next() then refuses it, whole or partial")
    func stopsBeforeOversized() {
        for tail in [
            "data: " + String(repeating: "x", count: 40) + "\n\n", "data: " + String(repeating: "x", count: 40),
        ] {
            var decoder = SSE.Decoder(maxEventBytes: 32)
            decoder.append(ByteBuffer(string: "data: a\n\n" + tail))
            #expect(decoder.take { _ in true }.map { String(buffer: $0) } == "data: a\n\n")
            #expect(decoder.take { _ in true } == nil)
            #expect(throws: SSE.Decoder.TooLarge.self) { _ = try decoder.next() }
        }
    }
}
