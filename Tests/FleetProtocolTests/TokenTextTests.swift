import FleetProtocol
import NIOCore
import Testing

/// `TokenText`, the relay's delivered text kept as string tokens, against the path it replaces:
/// each piece decoded on arrival (`ChunkScanner`'s decoded mode) and appended to a `String`.
@Suite("TokenText")
struct TokenTextTests {
    /// `token` as a chunk's content, scanned in token mode as the relay scans it: the payload (after
    /// `lead` bytes the reader index skips) and the token's range, relative to the reader index.
    private func scanned(_ token: String, lead: Int = 0) throws -> (payload: ByteBuffer, range: Range<Int>) {
        var payload = ByteBuffer(string: String(repeating: "x", count: lead))
        payload.writeString(#"{"choices":[{"index":0,"delta":{"content":"# + token + "}}]}")
        payload.moveReaderIndex(forwardBy: lead)
        let chunk = try ChunkScanner.scan(payload, range: 0..<payload.readableBytes, content: .token)
        return (payload, try #require(chunk.choice?.contentToken))
    }

    /// The old path's text of one piece: the chunk scanned in decoded mode.
    private func decoded(_ token: String) throws -> String {
        let payload = ByteBuffer(string: #"{"choices":[{"index":0,"delta":{"content":"# + token + "}}]}")
        return try #require(try ChunkScanner.scan(payload, range: 0..<payload.readableBytes).choice?.content)
    }

    /// The text of `pieces` kept as tokens, and as the old path kept it.
    private func both(_ pieces: [String]) throws -> (kept: TokenText, old: String) {
        var kept = TokenText()
        var old = ""
        for (index, piece) in pieces.enumerated() {
            let (payload, range) = try self.scanned(piece, lead: index % 3)
            kept.append(token: range, of: payload)
            old += try self.decoded(piece)
        }
        return (kept, old)
    }

    @Test("Escapes across pieces decode to the text the old path kept: \\n, \\\", \\u00e9, surrogate pairs")
    func escapesAcrossPieces() throws {
        let pieces = [
            #""Hello""#, #"" \"car\"""#, #""\n""#, #""caf\u00e9 ""#, #""\ud83d\ude97""#, #""a\/b\\c\t\r\b\f""#,
            #""é€中🚗""#, #""\u0000\u001f""#, #""""#,
        ]
        let (kept, old) = try self.both(pieces)
        #expect(kept.text == old)
        #expect(kept.text == "Hello \"car\"\ncafé 🚗a/b\\c\t\r\u{08}\u{0C}é€中🚗\u{00}\u{1F}")
    }

    @Test("A surrogate pair split over two pieces stays two U+FFFD, as each piece decoded on arrival gave")
    func splitSurrogatePair() throws {
        let (kept, old) = try self.both([#""\ud83d""#, #""\ude97""#])
        #expect(old == "\u{FFFD}\u{FFFD}")
        #expect(kept.text == old)
        let (joined, _) = try self.both([#""\ud83d\ude97""#])
        #expect(joined.text == "🚗")
    }

    @Test("Random pieces with random escapes decode to the old path's text; the escaped count bounds its UTF-8")
    func randomPieces() throws {
        var random = SplitMix64(seed: 11)
        let forms: [String] = [
            "a", " ", "Z9", #"\""#, #"\\"#, #"\/"#, "/", #"\n"#, #"\r"#, #"\t"#, #"\b"#, #"\f"#, #"\u0000"#, #"\u00E9"#,
            #"\u20ac"#, #"\ud83d\ude97"#, #"\ud83d"#, #"\ude97"#, #"\uDBFF\uDFFF"#, "é", "中", "🚗", "u",
        ]
        for round in 0..<2_000 {
            let pieces = (0..<Int(random.next() % 6)).map { _ in
                "\"" + (0..<Int(random.next() % 5)).map { _ in forms[Int(random.next() % UInt64(forms.count))] }.joined()
                    + "\""
            }
            let (kept, old) = try self.both(pieces)
            #expect(kept.text == old, "round \(round): \(pieces)")
            #expect(kept.escapedCount == pieces.map { $0.utf8.count - 2 }.reduce(0, +))
            #expect(kept.escapedCount >= old.utf8.count)
            #expect(kept.isEmpty == old.isEmpty)
        }
    }

    @Test("A long answer (past the first reservation), with and without escapes, reads whole")
    func longAnswer() throws {
        let plain = (0..<300).map { #"" t\#($0)""# }
        let (kept, old) = try self.both(plain)
        #expect(kept.text == old && old.hasPrefix(" t0 t1 t2") && old.hasSuffix(" t299"))
        let escaped = plain + [#""\n\u00e9""#] + plain
        let (keptEscaped, oldEscaped) = try self.both(escaped)
        #expect(keptEscaped.text == oldEscaped && oldEscaped.contains(" t299\né t0"))
    }

    @Test("Empty pieces add nothing; an empty text reads as an empty string")
    func empty() throws {
        let (kept, old) = try self.both([#""""#, #""""#])
        #expect(kept.isEmpty && kept.text.isEmpty && old.isEmpty)
        #expect(kept.tokens.isEmpty)
        #expect(TokenText().text == "")
    }
}
