public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Text kept as the JSON string tokens its pieces arrived in, decoded into a `String` only when
/// it is read.
///
/// A relay forwards each token of a completion and keeps the text only for a rare reader (a
/// continuation after a failover, a `stream: false` answer, the Responses API's closing events,
/// an audit). Appending a piece is one copy of its string token, quotes included, as
/// ``ChunkScanner`` validated it: ~400 instructions, where decoding it and growing a `String` were
/// ~760 (callgrind, the gateway's relay; issue #11 item 6).
///
/// ``text`` decodes the tokens one by one, each as ``ChunkScanner/string(_:range:)`` decodes it, so
/// the text is exactly the pieces' decoded texts joined: a surrogate pair split over two pieces
/// (`"\ud83d"`, `"\ude97"`) stays two U+FFFD, as when each piece was decoded on arrival.
package struct TokenText: Sendable {
    /// The pieces' string tokens, one after the other.
    ///
    /// An array, not a `ByteBuffer`: every access to a `ByteBuffer`'s storage is a run-time
    /// exclusivity check (~130 instructions with its end), and appending a token to one cost two a
    /// token (issue #19); an array's storage is reached through pointers, with no check.
    package private(set) var tokens: [UInt8] = []
    /// The bytes between the quotes of every piece: the text as JSON escapes it, never fewer bytes
    /// than its UTF-8 (an escape is at least as long as what it stands for).
    package private(set) var escapedCount = 0

    package init() {}

    /// Whether no piece with text was appended.
    package var isEmpty: Bool { self.escapedCount == 0 }

    /// Appends the piece whose string token is at `range` of `payload`'s readable bytes. The token
    /// must be one ``ChunkScanner`` validated (``ChunkScanner/Choice/contentToken``): it is not checked
    /// again. An empty string (`""`) adds nothing.
    package mutating func append(token range: Range<Int>, of payload: ByteBuffer) {
        guard range.count > 2 else { return }
        // Moved out and back: a closure that captured `self` cost a run-time exclusivity check.
        var kept = TokenText()
        swap(&kept, &self)
        payload.withUnsafeReadableBytes { bytes in
            kept.append(token: UnsafeRawBufferPointer(rebasing: bytes[range]))
        }
        swap(&kept, &self)
    }

    /// Appends the piece whose string token (quotes included) is `token`: for a caller already
    /// holding the bytes (the relay's pass-through run, one storage access a token fewer). The
    /// token must be one ``ChunkScanner`` validated; an empty string (`""`) adds nothing.
    package mutating func append(token: UnsafeRawBufferPointer) {
        guard token.count > 2 else { return }
        // One allocation for a typical answer's tokens, not a doubling from a few bytes up.
        if self.tokens.capacity < 256 { self.tokens.reserveCapacity(256) }
        self.tokens.append(contentsOf: token)
        self.escapedCount += token.count - 2
    }

    /// The text, decoded.
    package var text: String {
        self.tokens.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return "" }
            var out: [UInt8] = []
            out.reserveCapacity(self.escapedCount)
            if memchr(base, Int32(UInt8(ascii: "\\")), bytes.count) == nil {
                // No escape anywhere (most answers): every quote is a token's own, so the text is the
                // bytes without them — no token-by-token walk (`TokenTextTests` checks both ways).
                for byte in bytes where byte != UInt8(ascii: "\"") { out.append(byte) }
            } else {
                var reader = ChunkScanner.Reader(bytes: bytes)
                while !reader.atEnd, let range = try? reader.stringRange() {
                    if let raw = reader.rawContent(range) {
                        out.append(contentsOf: raw)
                    } else {
                        reader.decodeEscaped(range, into: &out)
                    }
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
