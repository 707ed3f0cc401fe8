import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

/// The pass-through run (`take(while:)`) against the item path, on raw bytes cut
/// anywhere (inside UTF-8 too: the seeded suite feeds such rounds whole), with small event bounds
/// (events just under, at and over `maxEventBytes`, whole and partial), a small `maxEventsPerAttempt`,
/// CRLF lookalikes, empty tokens and a foreign id, and the dispatcher's stop on an attempt's end.
@Suite("SSERelay pass-through on raw bytes cut anywhere")
struct SSERelayPassThroughRawBytesTests {
    struct Driver {
        var relay: SSERelay
        var out = ByteBuffer()
        var kinds: [SSERelay.Kind] = []
        var committed = false
        var ended = false
        var passThrough: Bool
        var passed = 0
        var buffered: [Bool] = []

        init(_ configuration: SSERelay.Configuration, passThrough: Bool) {
            self.relay = SSERelay(configuration: configuration)
            self.passThrough = passThrough
            self.relay.open(attempt: 1)
        }

        /// As `Dispatcher.received(_:from:readContinues:)` and `handle(_:from:)`.
        mutating func feed(_ bytes: ArraySlice<UInt8>) {
            guard !self.ended else { return }
            self.relay.append(ByteBuffer(bytes: bytes), from: 1)
            while !self.ended {
                if self.passThrough && self.committed {
                    let count = self.relay.forwardTokens(from: 1, into: &self.out)
                    self.kinds += Array(repeating: .output, count: count)
                    self.passed += count
                }
                guard let item = self.relay.next(from: 1) else { break }
                self.kinds.append(item.kind)
                switch item.kind {
                case .preamble: if !self.committed { self.relay.hold(item, from: 1) }
                case .output:
                    if self.committed && self.relay.isAfterFinish(item) { continue }
                    if self.relay.wouldExceedLimits(item) {
                        self.relay.finishOverLimit(into: &self.out)
                        self.ended = true
                    } else if self.committed {
                        self.relay.deliver(item, from: 1, into: &self.out)
                    } else {
                        self.committed = true
                        self.relay.commit(1, first: item, into: &self.out)
                    }
                case .usage: break
                case .done:
                    self.relay.finishStream(into: &self.out)
                    self.ended = true
                case .upstreamError, .malformed:
                    self.ended = true
                case .overLimit:
                    self.relay.finishOverLimit(into: &self.out)
                    self.ended = true
                }
            }
            self.buffered.append(self.relay.hasBufferedBytes(from: 1))
        }
    }

    private static let texts = ["a", "", "hé", "日本", "🙂", "q\"", "\\", " ", "tok"]

    private static func event(_ random: inout SplitMix64, id: String, bound: Int) -> String {
        let text = Self.texts[Int(random.next() % UInt64(Self.texts.count))]
        let plain = chunk(id, content: text)
        switch random.next() % 20 {
        case 0: return plain.replacingOccurrences(of: "\n\n", with: "\r\n\r\n")
        case 1: return plain.replacingOccurrences(of: "\n\n", with: "\n\r\n")
        case 2: return plain.replacingOccurrences(of: "\n\n", with: "\r\n\n")
        case 3: return chunk(id, content: "")
        case 4: return chunk("zz", content: text)  // another id, same length
        case 5: return ": k\r\n\r\n"
        case 6: return chunk(id, content: text, finish: "stop")
        case 7:
            // A token event sized around the bound: under, at, and over it.
            let base = chunk(id, content: "").utf8.count
            let size = bound - 1 + Int(random.next() % 3)  // bound-1, bound, bound+1 bytes
            return chunk(id, content: String(repeating: "w", count: max(1, size - base)))
        case 8: return usageChunk
        case 9: return plain.replacingOccurrences(of: "\"content\":", with: "\"content\":\r")
        default: return plain
        }
    }

    @Test("Raw bytes cut anywhere, small bounds: the same client bytes, kinds and state (seeded)")
    func sameAsTheItemPath() {
        var random = SplitMix64(seed: 0xA09D_5F0)
        var passed = 0
        for round in 0..<300 {
            let bound = 180 + Int(random.next() % 40)
            var stream = chunk("s", role: true) + chunk("s", content: "first")
            for _ in 0..<Int(random.next() % 30) { stream += Self.event(&random, id: "s", bound: bound) }
            switch random.next() % 3 {
            case 0: stream += "data: [DONE]\n\n"
            case 1: stream += "data: " + String(repeating: "p", count: Int(random.next() % UInt64(2 * bound)))
            default: break
            }
            let bytes = Array(stream.utf8)
            var cuts: Set<Int> = [bytes.count]
            if random.next() % 4 == 0 {
                cuts.formUnion(0...bytes.count)
            } else {
                for _ in 0..<Int(random.next() % 10) { cuts.insert(Int(random.next() % UInt64(bytes.count + 1))) }
            }
            let maxTokens: Int? = random.next() % 3 == 0 ? Int(random.next() % 12) : nil
            let configuration = SSERelay.Configuration(
                streaming: true, includeUsage: random.next() % 2 == 0, chat: true, maxOutputTokens: maxTokens,
                maxEventBytes: bound, maxEventsPerAttempt: 2 + Int(random.next() % 25), fallbackID: "chatcmpl-f")
            var plain = Driver(configuration, passThrough: false)
            var fast = Driver(configuration, passThrough: true)
            var from = 0
            for cut in cuts.sorted() {
                plain.feed(bytes[from..<cut])
                fast.feed(bytes[from..<cut])
                from = cut
            }
            #expect(String(buffer: fast.out) == String(buffer: plain.out), "round \(round)")
            #expect(fast.out == plain.out, "round \(round)")
            #expect(fast.kinds == plain.kinds, "round \(round)")
            #expect(fast.buffered == plain.buffered, "round \(round)")
            #expect(fast.ended == plain.ended, "round \(round)")
            #expect(fast.relay.deliveredTokens == plain.relay.deliveredTokens, "round \(round)")
            #expect(fast.relay.deliveredText == plain.relay.deliveredText, "round \(round)")
            #expect(fast.relay.usage == plain.relay.usage, "round \(round)")
            passed += fast.passed
        }
        #expect(passed > 400)
    }
}
