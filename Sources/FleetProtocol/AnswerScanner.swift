public import NIOCore

/// A strict, allocation-light reader of one whole completion answer — the JSON body an
/// OpenAI-compatible server sends for `stream: false` (`chat.completion` or `text_completion`) —
/// so a relay can pass the server's bytes on instead of decoding and re-encoding them.
///
/// Responsibilities:
/// 1. validate the whole body as JSON (RFC 8259) with ``ChunkScanner``'s reader: structure, string
///    escapes, UTF-8, numbers, nesting at most ``ChunkScanner/maxDepth`` deep;
/// 2. check the answer's shape: an object with a non-empty `choices` array of objects, each with a
///    `message` object (chat: `role` a string, `content` a string or null, `tool_calls` an array or
///    null) or a `text` string (legacy completions), an integer `index` and a string or null
///    `finish_reason` when present; `id`, `object` and `model` strings, `created` an integer and
///    `usage` an object with integer counts, when present — anything else is ``ChunkScanner/Malformed``;
/// 3. pick out what the relay needs to account for the answer and to rewrite only what it must:
///    the `usage` counts, the byte ranges of `id`, `object`, `model`, whether `created` is there,
///    the bytes of the choices' text, and where the top-level object closes. Every other member
///    (`system_fingerprint`, `logprobs`, `tool_calls`, further choices, …) is validated and skipped.
///
/// An `{"error":…}` body is reported as ``Answer/isError`` (its shape is not checked further).
public enum AnswerScanner {
    /// What a whole answer says.
    public struct Answer: Sendable, Hashable {
        /// The body was an object with an `error` member.
        public var isError = false
        /// Byte ranges, within the scanned bytes, of the string tokens (quotes included).
        public var idRange: Range<Int>?
        public var objectRange: Range<Int>?
        public var modelRange: Range<Int>?
        /// Whether an integer `created` was present.
        public var hasCreated = false
        /// The choices in the `choices` array.
        public var choices = 0
        /// `usage.prompt_tokens` and `usage.completion_tokens`, when present as integers.
        public var promptTokens: Int?
        public var completionTokens: Int?
        /// Bytes of the choices' text (`message.content` or `text` string tokens, quotes excluded).
        public var textBytes = 0
        /// Tool calls in the choices' messages.
        public var toolCalls = 0
        /// The offset of the top-level object's closing `}`.
        public var closingBrace = 0
    }

    /// Scans `bytes`, which must hold exactly one JSON object (surrounding whitespace allowed): a
    /// `chat.completion` when `chat`, else a `text_completion`.
    public static func scan(_ bytes: UnsafeRawBufferPointer, chat: Bool) throws(ChunkScanner.Malformed) -> Answer {
        var reader = ChunkScanner.Reader(bytes: bytes)
        var answer = Answer()
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "{") else { throw reader.fail() }
        try reader.enterObject(depth: 1)
        var members = 0
        var hasChoices = false
        while true {
            // The position of the `}` when the object closes here.
            reader.skipWhitespace()
            let before = reader.position
            guard let key = try reader.nextMember(&members) else {
                answer.closingBrace = before
                break
            }
            switch key {
            case .id: answer.idRange = try reader.stringRange()
            case .object: answer.objectRange = try reader.stringRange()
            case .model: answer.modelRange = try reader.stringRange()
            case .created:
                guard try reader.integerOrSkip(depth: 2) != nil else { throw reader.fail() }
                answer.hasCreated = true
            case .error:
                answer.isError = !(try reader.skipNonNull(depth: 2))  // `"error": null` is none
            case .usage:
                if reader.literal("null") { continue }
                try reader.enterObject(depth: 2)
                var usageMembers = 0
                while let key = try reader.nextMember(&usageMembers) {
                    switch key {
                    case .promptTokens: answer.promptTokens = try Self.count(&reader)
                    case .completionTokens: answer.completionTokens = try Self.count(&reader)
                    default: try reader.skipValue(depth: 3)
                    }
                }
            case .choices:
                try reader.enterArray(depth: 2)
                hasChoices = true
                var elements = 0
                while try reader.nextElement(&elements) {
                    try Self.choice(&reader, chat: chat, into: &answer)
                    answer.choices += 1
                }
            default: try reader.skipValue(depth: 2)
            }
        }
        reader.skipWhitespace()
        guard reader.atEnd else { throw reader.fail() }
        if answer.isError { return answer }
        guard hasChoices, answer.choices > 0 else { throw reader.fail() }
        return answer
    }

    /// One choice: its shape checked, its text counted.
    private static func choice(
        _ reader: inout ChunkScanner.Reader, chat: Bool, into answer: inout Answer
    ) throws(ChunkScanner.Malformed) {
        try reader.enterObject(depth: 3)
        var members = 0
        var hasOutput = false
        while let key = try reader.nextMember(&members) {
            switch key {
            case .index: _ = try Self.count(&reader)
            case .finishReason:
                if !reader.literal("null") { _ = try reader.stringRange() }
            case .message where chat:
                try Self.message(&reader, into: &answer)
                hasOutput = true
            case .text where !chat:
                let range = try reader.stringRange()
                answer.textBytes += range.count - 2
                hasOutput = true
            default: try reader.skipValue(depth: 4)
            }
        }
        guard hasOutput else { throw reader.fail() }
    }

    /// A chat choice's `message`.
    private static func message(
        _ reader: inout ChunkScanner.Reader, into answer: inout Answer
    ) throws(ChunkScanner.Malformed) {
        try reader.enterObject(depth: 4)
        var members = 0
        while let key = try reader.nextMember(&members) {
            switch key {
            case .role: _ = try reader.stringRange()
            case .content:
                if !reader.literal("null") { answer.textBytes += try reader.stringRange().count - 2 }
            case .toolCalls:
                if reader.literal("null") { continue }
                try reader.enterArray(depth: 5)
                var elements = 0
                while try reader.nextElement(&elements) {
                    guard reader.peek() == UInt8(ascii: "{") else { throw reader.fail() }
                    try reader.skipValue(depth: 6)
                    answer.toolCalls += 1
                }
            default: try reader.skipValue(depth: 5)
            }
        }
    }

    /// A count: a non-negative integer.
    private static func count(_ reader: inout ChunkScanner.Reader) throws(ChunkScanner.Malformed) -> Int {
        guard reader.peek() != UInt8(ascii: "-"), let value = try reader.integerOrSkip(depth: 4) else {
            throw reader.fail()
        }
        return min(value, ChunkScanner.maxTokenCount)
    }
}
