public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A strict, allocation-light reader of one streamed completion chunk (the JSON of an SSE `data:`
/// line), as OpenAI-compatible servers send it with any JSON spacing.
///
/// Responsibilities:
/// 1. validate the whole payload as JSON (RFC 8259): structure, string escapes, UTF-8, numbers,
///    nesting at most ``maxDepth`` deep — anything else is ``ChunkScanner/Malformed``;
/// 2. pick out what a relay needs and skip the rest: `id`, `object`, `created`, `model`, each
///    choice's `index`, `delta.role`, `delta.content` or `text`, `finish_reason`, whether it carries
///    `tool_calls` or `logprobs`, the `usage` counts, and whether the payload is an `{"error":…}`;
/// 3. never copy the raw bytes: strings that are only compared (`id`, `model`) are kept as byte
///    ranges; text is decoded (small tokens fit Swift's inline strings, so no heap allocation).
public enum ChunkScanner {
    /// The largest token count a usage may report: far above any context, far below what sums of
    /// counts could overflow.
    public static let maxTokenCount = Int(Int32.max)

    /// A reported token count, at most ``maxTokenCount``; nil for a negative one, which no count can be
    /// (helper-80: read as 0, a lying runtime's `-100` zeroed what the request was charged; unknown, the
    /// reader counts for itself, as when the count is missing or not an integer).
    @inlinable
    public static func tokenCount(_ value: Int?) -> Int? {
        guard let value, value >= 0 else { return nil }
        return min(value, Self.maxTokenCount)
    }

    /// The deepest nesting accepted (objects and arrays).
    public static let maxDepth = 32

    /// The payload is not a JSON value, or not valid UTF-8.
    public struct Malformed: Error, Hashable, Sendable {
        /// Where the reader stopped, as a byte offset.
        public var offset: Int
    }

    /// A token's byte range in two 32-bit offsets, not an optional range (17 bytes and 7 of padding):
    /// every event's chunk is copied a few times on the relay's path, and the larger layout cost ~1,300
    /// instructions a stream in copies. A string token never ends at offset 0, so 0 is "none".
    struct TokenRange: Sendable, Hashable {
        private var start: Int32 = 0
        private var end: Int32 = 0

        var range: Range<Int>? {
            get { self.end == 0 ? nil : Int(self.start)..<Int(self.end) }
            set {
                self.start = newValue.map { Int32(clamping: $0.lowerBound) } ?? 0
                self.end = newValue.map { Int32(clamping: $0.upperBound) } ?? 0
            }
        }
    }

    /// One choice of a chunk.
    public struct Choice: Sendable, Hashable {
        public var index = 0
        /// `delta.content` (chat) or `text` (completions), decoded; nil when absent or null, and when
        /// scanned with ``ContentMode/token`` (then ``contentToken`` has it).
        public var content: String?
        /// With ``ContentMode/token``: the byte range, within the scanned payload, of the string token
        /// of `delta.content` or `text` (quotes included, validated, not decoded); nil when absent, null
        /// or not a string, and always with ``ContentMode/decoded``.
        public var contentToken: Range<Int>? {
            get { self.content32.range }
            set { self.content32.range = newValue }
        }
        private var content32 = TokenRange()
        /// The byte range, within the scanned payload, of the string token of `delta.reasoning_content`
        /// (or `delta.reasoning`): a reasoning model's thinking, quotes included, validated, not
        /// decoded; nil when absent, null, `""` or not a string. In either ``ContentMode``.
        public var reasoningToken: Range<Int>? {
            get { self.reasoning32.range }
            set { self.reasoning32.range = newValue }
        }
        private var reasoning32 = TokenRange()
        /// The byte range of the string token of `delta.refusal`: the model declined (a safety refusal,
        /// or a response schema it would not fill), quotes included, validated, not decoded; nil when
        /// absent, null, `""` or not a string.
        public var refusalToken: Range<Int>? {
            get { self.refusal32.range }
            set { self.refusal32.range = newValue }
        }
        private var refusal32 = TokenRange()
        /// `finish_reason`, when a string.
        public var finishReason: String?
        /// `delta.role` was present and not null.
        public var hasRole = false
        /// `delta.tool_calls` (or `delta.function_call`) was present and not null.
        public var hasToolCalls = false
        /// `logprobs` was present and not null.
        public var hasLogprobs = false
        /// Another `delta` member with a value that is not null or `""` — `reasoning_content`, `audio`,
        /// a `refusal` — is output too (the relay reads thinking and refusals by their tokens).
        public var hasOtherOutput = false
        /// A `delta` object (a chat chunk's shape) was present.
        public var hasDelta = false
        /// A `text` member (a legacy completion chunk's shape) was present.
        public var hasText = false

        /// Whether the choice carries output: text, a tool call or a finish reason.
        public var carriesOutput: Bool {
            !(self.content ?? "").isEmpty || (self.contentToken?.count ?? 0) > 2 || self.hasToolCalls
                || self.hasOtherOutput || self.finishReason != nil
        }
    }

    /// What a chunk says.
    public struct Chunk: Sendable, Hashable {
        /// The payload was a JSON object with an `error` member.
        public var isError = false
        /// Byte ranges, within the scanned payload, of the string tokens (quotes included).
        public var idRange: Range<Int>?
        public var objectRange: Range<Int>?
        public var modelRange: Range<Int>?
        public var created: Int?
        /// Whether a `choices` array was present.
        public var hasChoices = false
        /// The first choice (index 0 or the first listed); more are in ``otherChoices``.
        public var choice: Choice?
        public var otherChoices: [Choice] = []
        /// `usage.prompt_tokens` and `usage.completion_tokens` when usage was an object, each at most
        /// ``ChunkScanner/maxTokenCount`` (a lying upstream's `9223372036854775807` summed or added to
        /// another count trapped the process that read it); nil when missing, negative or not an integer
        /// (``ChunkScanner/tokenCount(_:)``): the reader then counts for itself.
        public var promptTokens: Int?
        public var completionTokens: Int?

        /// Whether `usage` was present as an object.
        public var hasUsage = false
        /// Whether `usage` was present as something other than an object or `null`.
        public var hasOtherUsage = false
        /// Whether the chunk has a `usage` member that is not `null`: a relay that must not pass an
        /// upstream's counts on unread strips or replaces it.
        public var carriesUsage: Bool { self.hasUsage || self.hasOtherUsage }

        /// Whether any choice carries output.
        public var carriesOutput: Bool {
            (self.choice?.carriesOutput ?? false) || self.otherChoices.contains { $0.carriesOutput }
        }
    }

    /// How a choice's text is read.
    public enum ContentMode: Sendable {
        /// Into ``Choice/content``, a `String` (a relay that rewrites the chunk).
        case decoded
        /// As the range of its JSON string token, ``Choice/contentToken``: a relay that writes the text
        /// back as JSON copies the token (``JSONBody/writeJSONString(token:into:)``) instead of
        /// decoding it into a `String` and escaping it again (issue #19, the agent's relay).
        case token
    }

    /// Scans `bytes`, which must hold exactly one JSON object (surrounding whitespace allowed).
    public static func scan(_ bytes: UnsafeRawBufferPointer, content: ContentMode = .decoded) throws(Malformed) -> Chunk
    {
        var reader = Reader(bytes: bytes)
        var chunk = Chunk()
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "{") else { throw Malformed(offset: reader.position) }
        try reader.enterObject(depth: 1)
        var members = 0
        while let key = try reader.nextMember(&members) {
            switch key {
            case .id: chunk.idRange = try reader.stringRange()
            case .object: chunk.objectRange = try reader.stringRange()
            case .model: chunk.modelRange = try reader.stringRange()
            case .created: chunk.created = try reader.integerOrSkip(depth: 2)
            case .error:
                // `"error": null` beside the choices (some servers write it in every chunk) is no error.
                chunk.isError = !(try reader.skipNonNull(depth: 2))
            case .usage:
                if reader.peek() == UInt8(ascii: "{") {
                    chunk.hasUsage = true
                    try reader.enterObject(depth: 2)
                    var usageMembers = 0
                    while let key = try reader.nextMember(&usageMembers) {
                        switch key {
                        case .promptTokens:
                            chunk.promptTokens = Self.tokenCount(try reader.integerOrSkip(depth: 3))
                        case .completionTokens:
                            chunk.completionTokens = Self.tokenCount(try reader.integerOrSkip(depth: 3))
                        default: try reader.skipValue(depth: 3)
                        }
                    }
                } else {
                    chunk.hasOtherUsage = !(try reader.skipNonNull(depth: 2))
                }
            case .choices:
                guard reader.peek() == UInt8(ascii: "[") else {
                    try reader.skipValue(depth: 2)
                    continue
                }
                chunk.hasChoices = true
                try reader.enterArray(depth: 2)
                var elements = 0
                while try reader.nextElement(&elements) {
                    let choice = try reader.choice(depth: 3, content: content)
                    if chunk.choice == nil { chunk.choice = choice } else { chunk.otherChoices.append(choice) }
                }
            default: try reader.skipValue(depth: 2)
            }
        }
        reader.skipWhitespace()
        guard reader.atEnd else { throw Malformed(offset: reader.position) }
        return chunk
    }

    /// Scans the readable bytes of `buffer` in `range` (relative to its reader index); a
    /// ``Choice/contentToken`` is then relative to `range`'s start.
    public static func scan(
        _ buffer: ByteBuffer, range: Range<Int>, content: ContentMode = .decoded
    ) throws(Malformed) -> Chunk {
        let result: Result<Chunk, Malformed> = buffer.withUnsafeReadableBytes { bytes in
            let slice = UnsafeRawBufferPointer(rebasing: bytes[range])
            do throws(Malformed) {
                return .success(try Self.scan(slice, content: content))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decodes the string token at `range` of `bytes` (quotes included), after ``scan(_:)`` validated it.
    public static func string(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) -> String {
        var reader = Reader(bytes: bytes)
        reader.position = range.lowerBound
        return (try? reader.string()) ?? ""
    }
}
