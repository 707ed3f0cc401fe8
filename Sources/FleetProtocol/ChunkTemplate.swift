public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The last chunk of one upstream stream that carried text, kept so the next chunk that differs from
/// it only in that text is read without scanning it again.
///
/// An OpenAI-compatible server writes every token chunk of a stream alike —
/// `{"id":"…","object":"chat.completion.chunk","created":…,"model":"…","choices":[{"index":0,"delta":{"content":`
/// TOKEN `},"finish_reason":null}]}` — so a chunk whose bytes before and after its text's string token
/// equal the learned chunk's, and whose middle is one valid JSON string token, *is* that chunk with other
/// text: JSON is read left to right, so identical bytes put ``ChunkScanner`` in the identical state
/// before the token, and after it (the scanner's state never depends on a string's content). Checking
/// that is two `memcmp`s and the token's own validation — ~10× less than a full scan (issue #19: the
/// scanner was ~5 k instructions a chunk on the gateway and the agent).
///
/// Learned only from a chunk with exactly one choice and a string `content`/`text`, no error. Byte ranges
/// after the token (e.g. a `model` written after `choices`) move by the token's change in length.
/// ``ChunkScanner/scan(_:content:template:)`` is the one entry point; `ChunkTemplateTests` checks it
/// against ``ChunkScanner/scan(_:content:)`` on random streams, invalid bytes included.
public struct ChunkTemplate: Sendable {
    /// The learned payload, the range of its text's string token in it, and what the scanner read.
    private var learned: [UInt8] = []
    private var token: Range<Int> = 0..<0
    private var chunk: ChunkScanner.Chunk?

    public init() {}

    /// The learned chunk (its text's token at the learned position), if one was learned.
    package var learnedChunk: ChunkScanner.Chunk? { self.chunk }

    /// Where the text's string token is in `bytes`, if `bytes` is the learned chunk with another valid
    /// string token for its text; nil when it is not. What ``match(_:)`` checks, without building the
    /// chunk (a relay passing such chunks through as they are needs only the token).
    package func matchToken(_ bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        // A learned payload is never empty: it has a token.
        guard !self.learned.isEmpty, let base = bytes.baseAddress else { return nil }
        let prefix = self.token.lowerBound
        let suffix = self.learned.count - self.token.upperBound
        guard bytes.count >= prefix + 2 + suffix else { return nil }
        let same = self.learned.withUnsafeBytes { learned in
            memcmp(learned.baseAddress!, base, prefix) == 0
                && memcmp(learned.baseAddress! + self.token.upperBound, base + (bytes.count - suffix), suffix) == 0
        }
        guard same else { return nil }
        var reader = ChunkScanner.Reader(bytes: bytes)
        reader.position = prefix
        guard let range = try? reader.stringRange(), range.upperBound == bytes.count - suffix else { return nil }
        return range
    }

    /// What `bytes` says, if it is the learned chunk with another valid string token for its text
    /// (in ``ChunkScanner/ContentMode/token`` form); nil when it is not — then scan it in full.
    package func match(_ bytes: UnsafeRawBufferPointer) -> ChunkScanner.Chunk? {
        // The learned chunk is copied once, after the bytes matched (a copy is ~260 instructions;
        // `self.chunk != nil` would copy it too).
        guard let range = self.matchToken(bytes) else { return nil }
        // Changed where it is built: `var chunk = self.chunk!` and `return chunk` copied it twice.
        var result = self.chunk
        let shift = range.count - self.token.count
        if shift != 0 {
            let after = self.token.upperBound
            func move(_ range: inout Range<Int>?) {
                guard let old = range, old.lowerBound >= after else { return }
                range = (old.lowerBound + shift)..<(old.upperBound + shift)
            }
            move(&result!.idRange)
            move(&result!.objectRange)
            move(&result!.modelRange)
        }
        result?.choice?.contentToken = range
        return result
    }

    /// Keeps `chunk` (scanned from `bytes` with ``ChunkScanner/ContentMode/token``) as the template, if
    /// it has the one shape a template takes; else keeps the previous one.
    mutating func learn(_ chunk: ChunkScanner.Chunk, from bytes: UnsafeRawBufferPointer) {
        guard !chunk.isError, chunk.otherChoices.isEmpty, let token = chunk.choice?.contentToken else { return }
        self.learned.removeAll(keepingCapacity: true)
        self.learned.append(contentsOf: bytes)
        self.token = token
        self.chunk = chunk
    }
}

extension ChunkScanner {
    /// Scans like ``scan(_:content:)``, with the same result.
    ///
    /// A chunk that matches `template` is read from it without scanning it again; one that does not is
    /// scanned and learned into `template`.
    public static func scan(
        _ bytes: UnsafeRawBufferPointer, content: ContentMode, template: inout ChunkTemplate
    ) throws(Malformed) -> Chunk {
        var chunk: Chunk
        if let matched = template.match(bytes) {
            guard case .decoded = content else { return matched }  // returned as it is: no copy
            chunk = matched
        } else {
            chunk = try Self.scan(bytes, content: .token)
            template.learn(chunk, from: bytes)
        }
        if case .decoded = content {
            Self.decodeContent(&chunk.choice, in: bytes)
            for index in chunk.otherChoices.indices {
                var choice: Choice? = chunk.otherChoices[index]
                Self.decodeContent(&choice, in: bytes)
                chunk.otherChoices[index] = choice!
            }
        }
        return chunk
    }

    /// ``scan(_:content:template:)`` of the readable bytes of `buffer` in `range` (relative to its reader index).
    public static func scan(
        _ buffer: ByteBuffer, range: Range<Int>, content: ContentMode, template: inout ChunkTemplate
    ) throws(Malformed) -> Chunk {
        let result: Result<Chunk, Malformed> = buffer.withUnsafeReadableBytes { bytes in
            let slice = UnsafeRawBufferPointer(rebasing: bytes[range])
            do throws(Malformed) {
                return .success(try Self.scan(slice, content: content, template: &template))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Turns a ``ContentMode/token`` choice into its ``ContentMode/decoded`` form.
    private static func decodeContent(_ choice: inout Choice?, in bytes: UnsafeRawBufferPointer) {
        guard let token = choice?.contentToken else { return }
        choice!.content = Self.string(bytes, range: token)
        choice!.contentToken = nil
    }
}
