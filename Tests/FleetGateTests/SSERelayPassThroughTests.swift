import FleetGate
import Foundation
import NIOCore
import Testing

/// ``SSERelay/forwardTokens(from:into:)`` (plain tokens passed through in a run) against the relay
/// without it (every event through ``SSERelay/next(from:)``): the same bytes to the client, the same
/// kinds, tokens, text and usage, whatever the stream and however its bytes are split.
@Suite("SSERelay pass-through")
struct SSERelayPassThroughTests {
    private struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {  // SplitMix64
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476C_E5B9_E485
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    private static let texts = [
        " t1", "hello", "", "a\"quote", "line\nbreak", "tab\t", "é", "日本語", "🙂", "back\\slash", "\u{1}", " ",
    ]

    /// One event of a random stream; `id` is the stream's id.
    private static func event(_ random: inout Seeded, id: String) -> String {
        let text = Self.texts[Int(random.next() % UInt64(Self.texts.count))]
        // Plain tokens (the default) are 10 of 26; the rest break a run, or end the attempt.
        switch random.next() % 26 {
        case 0: return chunk(id, role: true)
        case 1: return chunk(id, content: text, finish: "stop")
        case 2: return usageChunk
        case 3: return chunk("other-id", content: text)
        case 4: return chunk(id, content: text, spaced: true)
        case 5: return ": keep-alive\n\n"
        case 6: return "event: token\n" + chunk(id, content: text)
        case 7: return chunk(id, content: text).replacingOccurrences(of: "\n\n", with: "\r\n\r\n")
        case 8: return rawChunk(id, "\"\\u0041\\n\"")  // escapes the relay would write otherwise
        case 9: return rawChunk(id, "\"x\"", "\"y\"")  // two choices
        case 10: return chunk(id, content: text).replacingOccurrences(of: "data: ", with: "data:")
        // A review's gaps (session 18): output that is not plain text, and an attempt's end, inside a run.
        case 11:
            return
                #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]}"#
                + "\n\n"
        case 12:
            return
                #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]},"finish_reason":null}]}"#
                + "\n\n"
        case 13:
            return
                #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"think"},"finish_reason":null}]}"#
                + "\n\n"
        case 14 where random.next() % 4 == 0:
            return #"data: {"error":{"message":"boom","type":"server_error"}}"# + "\n\n"
        case 15 where random.next() % 4 == 0: return chunk(id, content: String(repeating: "z", count: 70_000))  // past 64 KiB
        default: return chunk(id, content: text)
        }
    }

    private static func drive(
        _ pieces: [String], attempts: [Int], passThrough: Bool, maxTokens: Int?, usage: Bool
    ) -> RelayDriver {
        // n = 2: the random streams have chunks of two choices.
        var driver = RelayDriver(usage: usage, maxTokens: maxTokens, passThrough: passThrough, choices: 2)
        var kinds: [[SSERelay.Kind]] = []
        for (piece, attempt) in zip(pieces, attempts) { kinds.append(driver.feed(piece, from: attempt)) }
        driver.relay.finishStream(into: &driver.out)
        return driver
    }

    @Test("Random streams, splits and bounds: the client's bytes, tokens, text and usage are the same (seeded)")
    func sameAsTheItemPath() {
        var random = Seeded(state: 0x5EED_0019)
        var passedThrough = 0
        for round in 0..<400 {
            var stream = chunk("s", role: true)
            for _ in 0..<Int(random.next() % 40) { stream += Self.event(&random, id: "s") }
            if random.next() % 3 != 0 { stream += "data: [DONE]\n\n" }
            // Split at random places (a read can end anywhere, even inside a UTF-8 sequence).
            let bytes = Array(stream.utf8)
            var cuts = Set((0..<Int(random.next() % 6)).map { _ in Int(random.next() % UInt64(bytes.count)) })
            cuts.insert(bytes.count)
            var pieces: [String] = []
            var start = 0
            for cut in cuts.sorted() where cut > start {
                pieces.append(String(decoding: bytes[start..<cut], as: UTF8.self))
                start = cut
            }
            // Splitting a UTF-8 sequence into two Strings would change the bytes: keep such rounds whole.
            if pieces.joined().utf8.count != bytes.count { pieces = [stream] }
            let attempts = Array(repeating: 1, count: pieces.count)
            let maxTokens: Int? = round % 4 == 0 ? Int(random.next() % 20) : nil
            let usage = round % 5 == 0
            let plain = Self.drive(pieces, attempts: attempts, passThrough: false, maxTokens: maxTokens, usage: usage)
            let fast = Self.drive(pieces, attempts: attempts, passThrough: true, maxTokens: maxTokens, usage: usage)
            #expect(fast.client == plain.client, "round \(round)")
            #expect(fast.relay.deliveredTokens == plain.relay.deliveredTokens, "round \(round)")
            #expect(fast.relay.deliveredText == plain.relay.deliveredText, "round \(round)")
            #expect(fast.relay.usage == plain.relay.usage, "round \(round)")
            passedThrough += fast.passedThrough
        }
        #expect(passedThrough > 1_000)  // the runs were exercised, not skipped (1,110 with this seed)
    }

    @Test("A continuation with another id is rewritten with the stream's, not passed through")
    func continuation() {
        for passThrough in [false, true] {
            var driver = RelayDriver(passThrough: passThrough)
            _ = driver.feed(
                chunk("first", role: true) + chunk("first", content: "a") + chunk("first", content: "b"), from: 1)
            // The driver commits the attempt whose token comes: the continuation takes over at "c".
            _ = driver.feed(
                chunk("second", role: true) + chunk("second", content: "c") + chunk("second", content: "d"), from: 2)
            _ = driver.feed(chunk("second", content: "e"), from: 2)
            #expect(driver.relay.deliveredText == "abcde")
            let ids = Set(driver.clientChunks.compactMap { $0["id"] as? String })
            #expect(ids == ["first"])
            #expect(driver.passedThrough == (passThrough ? 1 : 0))  // "b" only: "d" and "e" are rewritten
        }
    }

    @Test("Past the client's max_tokens the run stops, and the item path ends the answer")
    func maxTokens() {
        var driver = RelayDriver(maxTokens: 3, passThrough: true)
        let kinds = driver.feed(
            chunk("s", role: true) + (0..<6).map { chunk("s", content: "t\($0)") }.joined() + "data: [DONE]\n\n",
            from: 1)
        #expect(driver.relay.deliveredTokens == 3)
        #expect(driver.relay.deliveredText == "t0t1t2")
        #expect(kinds.contains(.overLimit))
    }
}
