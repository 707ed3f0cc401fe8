import FleetProtocol
import Testing

/// `ChunkScanner.scan(_:content:template:)` against the full scan it stands for.
@Suite("ChunkTemplate")
struct ChunkTemplateTests {
    /// Scans `payloads` in order with one template and without one; every result (or error) is equal.
    private func agree(_ payloads: [[UInt8]], mode: ChunkScanner.ContentMode) {
        var template = ChunkTemplate()
        for payload in payloads {
            payload.withUnsafeBytes { bytes in
                let full = Result { () throws(ChunkScanner.Malformed) in try ChunkScanner.scan(bytes, content: mode) }
                let fast = Result { () throws(ChunkScanner.Malformed) in
                    try ChunkScanner.scan(bytes, content: mode, template: &template)
                }
                #expect(full == fast, "\(String(decoding: payload, as: UTF8.self))")
            }
        }
    }

    private static let texts: [String] = [
        "hi", "", " ", "a\\\"b", "\\\\", "line\\nbreak", "tab\\t", "\\u00e9t\\u00e9", "\\ud83d\\ude97", "\\ud800",
        "é", "🚗", "long token with spaces and punctuation, like this!", "\\/", "x\\by\\f\\r",
    ]
    /// Middles that are not one valid string token, or not valid UTF-8.
    private static let bad: [[UInt8]] = [
        Array(#""a","x":"b""#.utf8), Array(#""unterminated"#.utf8), Array(#""bad \x escape""#.utf8),
        [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0x01, 0x22], Array(#""\u12""#.utf8), Array("\"a\"\"".utf8),
        Array(#"null"#.utf8), Array(#"7"#.utf8), Array(#""a"}]}"#.utf8),
    ]

    private static func chunk(_ token: [UInt8], created: Int = 9, modelLast: Bool = false, spaced: Bool = false)
        -> [UInt8]
    {
        let s = spaced ? " " : ""
        let head = "{\(s)\"id\":\(s)\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":\(created),"
        let model = "\"model\":\"fleet-8b\""
        let choices = "\"choices\":[{\"index\":0,\"delta\":{\"content\":\(s)"
        let tail = "},\"finish_reason\":null}]"
        let before = head + (modelLast ? "" : model + ",") + choices
        let after = tail + (modelLast ? "," + model : "") + "\(s)}"
        return Array(before.utf8) + token + Array(after.utf8)
    }

    @Test("A stream of token chunks reads the same with and without the template, in both modes")
    func stream() {
        for modelLast in [false, true] {
            for spaced in [false, true] {
                let payloads = Self.texts.map {
                    Self.chunk(Array("\"\($0)\"".utf8), modelLast: modelLast, spaced: spaced)
                }
                agree(payloads, mode: .token)
                agree(payloads, mode: .decoded)
            }
        }
    }

    @Test("A middle that is not one valid string token is scanned in full, and fails as the full scan does")
    func invalidMiddles() {
        for bad in Self.bad {
            let payloads = [Self.chunk(Array(#""ok""#.utf8)), Self.chunk(bad), Self.chunk(Array(#""ok again""#.utf8))]
            agree(payloads, mode: .token)
            agree(payloads, mode: .decoded)
        }
    }

    @Test("Role, finish, usage, error and two-choice chunks between token chunks")
    func otherShapes() {
        let payloads: [[UInt8]] = [
            Array(#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#.utf8),
            Self.chunk(Array(#""one""#.utf8)),
            Array(
                #"{"id":"c","choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]}"#.utf8),
            Self.chunk(Array(#""two""#.utf8)), Self.chunk(Array(#""two""#.utf8), created: 10),
            Self.chunk(Array(#""three""#.utf8), created: 10),
            Array(#"{"error":{"message":"no"},"choices":[{"index":0,"delta":{"content":"e"}}]}"#.utf8),
            Self.chunk(Array(#""four""#.utf8), created: 10),
            Array(#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.utf8),
            Array(#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#.utf8),
            Self.chunk(Array(#""five""#.utf8), created: 10), Self.chunk(Array(#""""#.utf8), created: 10),
            Array(Self.chunk(Array(#""six""#.utf8), created: 10).dropLast(2)),
        ]
        agree(payloads, mode: .token)
        agree(payloads, mode: .decoded)
    }

    @Test(
        "Learned chunk, then one that must not be read from it (a second choice, a changed finish reason, a field after the token, a changed byte before it)"
    )
    func pairs() {
        // The cases a reviewer's planted bugs got past the other tests with (learning a two-choice chunk, no
        // suffix check, ranges after the token not moved, a prefix compared one byte short).
        let pairs: [(String, String)] = [
            (#"{"choices":[{"text":"a"},{"text":"b"}]}"#, #"{"choices":[{"text":"aa"},{"text":"b"}]}"#),
            (
                #"{"choices":[{"delta":{"content":"ab"},"finish_reason":null}]}"#,
                #"{"choices":[{"delta":{"content":"xy"},"finish_reason":"s1"}]}"#
            ),
            (
                #"{"choices":[{"delta":{"content":"ab"}}],"id":"c"}"#,
                #"{"choices":[{"delta":{"content":"abc"}}],"id":"c"}"#
            ),
            (
                #"{"choices":[{"delta":{"content":"ab"}}],"object":"o","model":"m"}"#,
                #"{"choices":[{"delta":{"content":""}}],"object":"o","model":"m"}"#
            ),
            (#"{"choices":[{"delta":{"content":"ab"}}]}"#, #"{"choices":[{"delta":{"content","ab"}}]}"#),
        ]
        for (learned, next) in pairs {
            agree([Array(learned.utf8), Array(next.utf8)], mode: .token)
            agree([Array(learned.utf8), Array(next.utf8)], mode: .decoded)
        }
    }

    @Test("Random streams: random texts, escapes and invalid bytes, random layouts and corruptions (seeded)")
    func random() {
        var generator = Seeded(base: SplitMix64(seed: 20_261_202))
        let alphabet: [[UInt8]] =
            Self.texts.map { Array($0.utf8) } + [[0x22], [0x5C], [0xFF], [0xE2, 0x82], [0x7D, 0x5D]]
        for _ in 0..<300 {
            let modelLast = Bool.random(using: &generator)
            let spaced = Bool.random(using: &generator)
            let idLast = Bool.random(using: &generator)
            var created = 9
            let payloads: [[UInt8]] = (0..<20).map { _ in
                if Int.random(in: 0..<10, using: &generator) == 0 { created += 1 }
                var middle: [UInt8] = [0x22]
                for _ in 0..<Int.random(in: 0..<4, using: &generator) {
                    middle += alphabet.randomElement(using: &generator)!
                }
                middle.append(0x22)
                var payload = Self.chunk(middle, created: created, modelLast: modelLast, spaced: spaced)
                if idLast {  // the id after the choices: its range moves with the token's length
                    payload =
                        Self.replacing(#""id":"chatcmpl-1","#, with: "", in: payload).dropLast()
                        + Array(#","id":"chatcmpl-1"}"#.utf8)
                }
                switch Int.random(in: 0..<20, using: &generator) {
                case 0: payload.removeLast(Int.random(in: 1...5, using: &generator))
                case 1:  // one byte changed anywhere, before the token included
                    payload[Int.random(in: 0..<payload.count, using: &generator)] = UInt8.random(
                        in: 0x20...0x7E, using: &generator)
                case 2:  // the finish reason changed, same length
                    payload = Self.replacing("null", with: #""s1""#, in: payload)
                default: break
                }
                return payload
            }
            agree(payloads, mode: Bool.random(using: &generator) ? .token : .decoded)
        }
    }

    @Test("The template is used: a chunk differing from the learned one only in its text is read from it")
    func used() throws {
        var template = ChunkTemplate()
        let first = Self.chunk(Array(#""a""#.utf8))
        _ = try first.withUnsafeBytes { bytes throws(ChunkScanner.Malformed) in
            try ChunkScanner.scan(bytes, content: .token, template: &template)
        }
        let second = Self.chunk(Array(#""b\n""#.utf8))
        #expect(second.withUnsafeBytes { template.match($0) } != nil)
        #expect(Self.chunk(Array(#""b""#.utf8), created: 10).withUnsafeBytes { template.match($0) } == nil)
        #expect(Self.chunk(Array(#""b"x""#.utf8)).withUnsafeBytes { template.match($0) } == nil)
        let chunk = try second.withUnsafeBytes { bytes throws(ChunkScanner.Malformed) in
            try ChunkScanner.scan(bytes, content: .decoded, template: &template)
        }
        #expect(chunk.choice?.content == "b\n")
        #expect(chunk.choice?.contentToken == nil)
        let token = try second.withUnsafeBytes { bytes throws(ChunkScanner.Malformed) in
            try ChunkScanner.scan(bytes, content: .token, template: &template)
        }
        #expect(token.choice?.contentToken.map { Array(second[$0]) } == Array(#""b\n""#.utf8))
    }

    /// `payload` with the first `old` replaced by `new`.
    private static func replacing(_ old: String, with new: String, in payload: [UInt8]) -> [UInt8] {
        let old = Array(old.utf8)
        guard
            let start = (0...(payload.count - old.count)).first(where: {
                payload[$0..<($0 + old.count)].elementsEqual(old)
            })
        else { return payload }
        return Array(payload[..<start]) + Array(new.utf8) + Array(payload[(start + old.count)...])
    }
}

/// A reproducible generator for the random test.
private struct Seeded: RandomNumberGenerator {
    var base: SplitMix64
    mutating func next() -> UInt64 { self.base.next() }
}
