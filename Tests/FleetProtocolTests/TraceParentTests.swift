import FleetProtocol
import Testing

@Suite("W3C traceparent", .timeLimit(.minutes(1)))
struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("A valid header parses and prints back; a child keeps the trace and flags with a new span")
    func roundTrip() throws {
        let parent = try #require(TraceParent(Self.valid))
        #expect(parent.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parent.parentID == "00f067aa0ba902b7")
        #expect(parent.flags == 1)
        #expect(parent.description == Self.valid)
        var random = SystemRandomNumberGenerator()
        let child = parent.child(using: &random)
        #expect(child.traceID == parent.traceID && child.flags == parent.flags)
        #expect(child.parentID != parent.parentID && child.parentID.count == 16)
        #expect(TraceParent(child.description) == child)
        let started = TraceParent.start(using: &random)
        #expect(TraceParent(started.description) == started)
    }

    @Test(
        "Malformed headers are refused",
        arguments: [
            "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ])
    func refused(_ value: String) {
        #expect(TraceParent(value) == nil)
    }

    @Test("A future version is read by its first four fields")
    func futureVersion() {
        #expect(
            TraceParent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")?.flags == 1)
    }

    /// The ids and the header are written into strings of their final size; this checks them
    /// against the plain definition (`String(radix:)`, zero-padded, and interpolation).
    @Test("Started traces and printed headers match the plain hex definition")
    func hexAgainstDefinition() {
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let s = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - s.count)) + s
        }
        struct Replay: RandomNumberGenerator {
            var words: [UInt64]
            mutating func next() -> UInt64 { self.words.removeFirst() }
        }
        let samples: [[UInt64]] = [
            [0, 0, 0], [1, 2, 3], [.max, .max, .max], [0x0123_4567_89ab_cdef, 0xf, 0xf0],
            [0x8000_0000_0000_0000, 0x10, 0x00ff_ff00_0000_0000],
        ]
        var system = SystemRandomNumberGenerator()
        for words in samples + (0..<64).map { _ in [system.next(), system.next(), system.next()] } {
            var replay = Replay(words: words)
            let started = TraceParent.start(using: &replay)
            #expect(started.traceID == hex(words[0], 16) + hex(words[1] | 1, 16))
            #expect(started.parentID == hex(words[2] | 1, 16))
            #expect(started.flags == 1)
            for flags: UInt8 in [0, 1, 0x0a, 0xff] {
                let trace = TraceParent(traceID: started.traceID, parentID: started.parentID, flags: flags)
                #expect(trace.description == "00-\(trace.traceID)-\(trace.parentID)-\(hex(UInt64(flags), 2))")
            }
        }
    }
}
