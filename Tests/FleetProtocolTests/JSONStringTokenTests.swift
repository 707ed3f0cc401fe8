import FleetProtocol
import NIOCore
import Testing

/// `JSONBody.writeJSONString(token:into:)`, the agent's pass-through of a runtime's token, against the
/// safe path it replaces: decode the token (`ChunkScanner`), then `JSONBody.writeJSONString(_:into:)`.
@Suite("JSON string token pass-through")
struct JSONStringTokenTests {
    /// The safe path's bytes for `token`.
    private func safe(_ token: [UInt8]) -> [UInt8] {
        var out = ByteBuffer()
        token.withUnsafeBytes { JSONBody.writeJSONString(ChunkScanner.string($0, range: 0..<$0.count), into: &out) }
        return Array(out.readableBytesView)
    }

    private func fast(_ token: [UInt8]) -> [UInt8] {
        var out = ByteBuffer()
        token.withUnsafeBytes { JSONBody.writeJSONString(token: $0, into: &out) }
        return Array(out.readableBytesView)
    }

    private func canonical(_ token: [UInt8]) -> Bool { token.withUnsafeBytes { JSONBody.isCanonical($0) } }

    /// `token` as a chunk's content, scanned in token mode: the scanner validates it and gives its range.
    private func scanned(_ token: [UInt8]) throws -> [UInt8] {
        let payload = Array(#"{"choices":[{"index":0,"delta":{"content":"#.utf8) + token + Array("}}]}".utf8)
        let range = try payload.withUnsafeBytes { bytes in
            try ChunkScanner.scan(bytes, content: .token).choice?.contentToken
        }
        let token = try #require(range)
        return Array(payload[token])
    }

    /// One way of writing `scalar` inside a JSON string, picked by `choice`: as it is, or any escape
    /// JSON allows for it.
    private func encode(_ scalar: Unicode.Scalar, _ choice: Int) -> String {
        func u(_ value: UInt32) -> String {
            let hex = String(value, radix: 16)
            let padded = String(repeating: "0", count: 4 - hex.count) + hex
            return "\\u" + (choice % 3 == 0 ? padded.uppercased() : padded)
        }
        let escapeAsUnicode = choice % 4 == 1
        switch scalar {
        case "\"": return escapeAsUnicode ? u(0x22) : "\\\""
        case "\\": return escapeAsUnicode ? u(0x5C) : "\\\\"
        case "/": return choice % 2 == 0 ? "/" : "\\/"
        case "\n": return escapeAsUnicode ? u(0x0A) : "\\n"
        case "\r": return escapeAsUnicode ? u(0x0D) : "\\r"
        case "\t": return escapeAsUnicode ? u(0x09) : "\\t"
        case "\u{08}": return escapeAsUnicode ? u(0x08) : "\\b"
        case "\u{0C}": return escapeAsUnicode ? u(0x0C) : "\\f"
        case _ where scalar.value < 0x20: return u(scalar.value)
        case _ where scalar.value > 0xFFFF && escapeAsUnicode:
            let value = scalar.value - 0x10000
            return u(0xD800 + (value >> 10)) + u(0xDC00 + (value & 0x3FF))
        case _ where escapeAsUnicode: return u(scalar.value)
        default: return String(scalar)
        }
    }

    /// The byte-wise definition `writeJSONString(_:into:)` writes in runs.
    private func bytewise(_ text: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    @Test("Writing text in runs gives the byte-wise definition's bytes, after any bytes already in the buffer")
    func runsMatchBytewise() {
        var random = SplitMix64(seed: 8)
        let alphabet: [Character] = [
            "a", " ", "\"", "\\", "\n", "\r", "\t", "\u{01}", "\u{1F}", "\u{7F}", "é", "🚗", "/",
        ]
        for round in 0..<3_000 {
            let text = String(
                (0..<Int(random.next() % 20)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            var out = ByteBuffer(string: "x")
            JSONBody.writeJSONString(text, into: &out)
            #expect(Array(out.readableBytesView) == [UInt8(ascii: "x")] + self.bytewise(text), "round \(round)")
        }
    }

    @Test("The common tokens are copied, and the copy is what the safe path writes")
    func commonTokensAreCopied() throws {
        for text in [
            " t12", "Hello", " world", "a\"b", "back\\slash", "line\n", "\ttab\r\n", "é", "🚗 car", "", "\u{7F}",
        ] {
            var canonical = ByteBuffer()
            JSONBody.writeJSONString(text, into: &canonical)
            let token = try self.scanned(Array(canonical.readableBytesView))
            #expect(self.canonical(token), "\(Array(text.utf8))")
            #expect(self.fast(token) == self.safe(token))
            #expect(self.fast(token) == Array(canonical.readableBytesView))
        }
    }

    @Test("Escapes the safe path writes otherwise (\\u, \\/, \\b, \\f, surrogates, a lone one) take it")
    func otherEscapesAreRewritten() throws {
        let cases: [(token: String, text: String)] = [
            (#""caf\u00e9""#, "café"), (#""a\/b""#, "a/b"), (#""\b\f""#, "\u{08}\u{0C}"),
            (#""\ud83d\ude97""#, "🚗"), (#""x\ud800y""#, "x\u{FFFD}y"), (#""\u0022""#, "\""), (#""\\u0041""#, "\\u0041"),
        ]
        for (token, text) in cases {
            let bytes = try self.scanned(Array(token.utf8))
            var expected = ByteBuffer()
            JSONBody.writeJSONString(text, into: &expected)
            #expect(self.fast(bytes) == Array(expected.readableBytesView), "\(token)")
            #expect(self.fast(bytes) == self.safe(bytes), "\(token)")
        }
        #expect(!self.canonical(Array(#""caf\u00e9""#.utf8)))
        #expect(!self.canonical(Array(#""a\/b""#.utf8)))
        #expect(self.canonical(Array(#""\\u0041""#.utf8)))  // an escaped backslash, then plain "u0041"
    }

    @Test("Random texts, each written with random escapes, give the safe path's bytes")
    func randomTokens() throws {
        var random = SplitMix64(seed: 19)
        let alphabet: [Unicode.Scalar] = [
            "a", "Z", " ", "0", "\"", "\\", "/", "\n", "\r", "\t", "\u{08}", "\u{0C}", "\u{00}", "\u{1F}", "\u{7F}",
            "é", "\u{2028}", "€", "中", "🚗", "\u{10FFFF}", "u",
        ]
        var copied = 0
        for round in 0..<5_000 {
            let length = Int(random.next() % 12)
            var text = String.UnicodeScalarView()
            var token = "\""
            for _ in 0..<length {
                let scalar = alphabet[Int(random.next() % UInt64(alphabet.count))]
                text.append(scalar)
                token += self.encode(scalar, Int(random.next() % 8))
            }
            token += "\""
            let bytes = try self.scanned(Array(token.utf8))
            // The safe path's text is the text that was encoded, however it was escaped.
            #expect(
                bytes.withUnsafeBytes { ChunkScanner.string($0, range: 0..<$0.count) } == String(text), "round \(round)"
            )
            #expect(self.fast(bytes) == self.safe(bytes), "round \(round): \(token)")
            if self.canonical(bytes) { copied += 1 }
        }
        #expect(copied > 500)  // the copy is exercised, not only the fallback
    }

    /// (A content that is not a string or null is malformed in both modes: ChunkScannerTests.contentOfAnotherType.)
    @Test("Token mode reads the same chunks as decoded mode")
    func tokenModeMatchesDecoded() throws {
        let payloads = [
            #"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{"id":"c","choices":[{"index":0,"delta":{"content":"a\"\n\u00e9"},"finish_reason":null}]}"#,
            #"{"id":"c","choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#,
            #"{"id":"c","object":"text_completion","choices":[{"text":" t1","index":0},{"text":"x","index":1}]}"#,
            #"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        ]
        for payload in payloads {
            let bytes = Array(payload.utf8)
            let (decoded, token) = try bytes.withUnsafeBytes { raw in
                (try ChunkScanner.scan(raw), try ChunkScanner.scan(raw, content: .token))
            }
            let choices = [decoded.choice].compactMap { $0 } + decoded.otherChoices
            let tokenChoices = [token.choice].compactMap { $0 } + token.otherChoices
            #expect(choices.count == tokenChoices.count)
            for (d, t) in zip(choices, tokenChoices) {
                #expect(t.content == nil)
                #expect(d.contentToken == nil)
                let text = t.contentToken.map { range in
                    bytes.withUnsafeBytes { ChunkScanner.string($0, range: range) }
                }
                #expect(text == d.content, "\(payload)")
                #expect(t.carriesOutput == d.carriesOutput, "\(payload)")
                #expect(t.finishReason == d.finishReason && t.index == d.index && t.hasRole == d.hasRole)
            }
            #expect(token.hasUsage == decoded.hasUsage && token.promptTokens == decoded.promptTokens)
        }
    }
}
