public import NIOCore

/// What one streamed completion event carries, read by scanning its `data` JSON in place.
///
/// The relay must know whether an event is the first token (before it, events are held back so
/// a failure can be retried unseen), and later what text was delivered. Upstreams format JSON as
/// they like — OpenAI and our agent compactly, Python's `json.dumps` (llama-cpp-python's server)
/// with a space after every `:` and `,` — so the event is parsed, not matched as a byte pattern.
/// Scanning allocates nothing unless the event has several `data:` lines; ``text(of:)``
/// allocates only the returned string. Hostile input (invalid UTF-8, deep nesting, forged SSE
/// fields) is classified, never trusted: `event:`, `id:` and `retry:` lines are ignored.
///
/// ```swift
/// let scan = ChunkEvent(event.raw)
/// if scan.carriesToken { … first token … }
/// ```
public struct ChunkEvent: Sendable, Hashable {
    /// How an event is classified.
    public enum Kind: Sendable, Hashable, CaseIterable {
        /// A chunk with choices but no output yet: the role chunk (`"delta":{"role":"assistant"}`,
        /// an empty `content`, a null `finish_reason`).
        case roleOnly
        /// A chunk with generated output: non-empty `delta.content` or `text`, or tool-call deltas.
        case content
        /// A chunk whose only news is a `finish_reason`.
        case finish
        /// The final usage chunk: `"choices":[]` with `usage`.
        case usageOnly
        /// An object with a non-null `error` member (the contract's mid-stream error).
        case error
        /// `data` that is not a completion chunk: malformed JSON, not an object, no `choices`.
        case notAChunk
        /// The terminal `data: [DONE]`.
        case done
        /// An event without a `data` field (a comment or keep-alive such as `: ping`).
        case noData
    }

    /// The classification.
    public let kind: Kind
    /// Whether the chunk carries a non-null `usage` object (with or without choices).
    public let hasUsage: Bool

    /// Classifies one SSE event given as its raw bytes (`data: …` lines, as
    /// ``SSE/Decoder/Event/raw`` holds them).
    public init(_ event: ByteBuffer) {
        self = event.withUnsafeReadableBytes { raw in
            Self.withData(of: raw) { data in
                guard let data else { return ChunkEvent(kind: .noData, hasUsage: false) }
                return Self.classify(json: data)
            }
        }
    }

    /// Classifies a bare `data` payload (the JSON, or `[DONE]`).
    public init(data: some StringProtocol) {
        var data = String(data)
        self = data.withUTF8 { Self.classify(json: UnsafeRawBufferPointer($0)) }
    }

    private init(kind: Kind, hasUsage: Bool) {
        self.kind = kind
        self.hasUsage = hasUsage
    }

    /// Whether the event counts as the first token (for retry and time to first token).
    ///
    /// Everything but a role chunk, a keep-alive and `[DONE]`. An error or a non-chunk counts (it
    /// is something the upstream said, passed on rather than retried).
    public var carriesToken: Bool {
        switch self.kind {
        case .roleOnly, .noData, .done: return false
        case .content, .finish, .usageOnly, .error, .notAChunk: return true
        }
    }

    /// The generated text of one raw SSE event.
    ///
    /// Every choice's `delta.content` or `text`, joined, JSON escapes decoded (invalid UTF-8
    /// becomes U+FFFD). Empty for anything else.
    public static func text(of event: ByteBuffer) -> String {
        event.withUnsafeReadableBytes { raw in
            Self.withData(of: raw) { data in
                guard let data else { return "" }
                var text = ""
                _ = Self.walk(json: data) { cursor, range in cursor.appendUnescaped(range, to: &text) }
                return text
            }
        }
    }

    // MARK: Scanning

    private static func classify(json: UnsafeRawBufferPointer) -> ChunkEvent {
        if json.elementsEqual("[DONE]".utf8) { return ChunkEvent(kind: .done, hasUsage: false) }
        return Self.walk(json: json, onText: nil)
    }

    /// What one walk over a chunk's JSON found.
    private struct Findings {
        var choices: Int?
        var content = false
        var finish = false
        var usage = false
        var error = false
    }

    /// Walks a chunk's members, reporting each non-empty content string to `onText`.
    private static func walk(
        json: UnsafeRawBufferPointer, onText: ((inout JSONCursor, Range<Int>) -> Void)?
    ) -> ChunkEvent {
        var cursor = JSONCursor(json)
        var found = Findings()
        func text(_ cursor: inout JSONCursor) -> Bool {
            if cursor.null() { return true }
            guard cursor.peek() == JSONCursor.quote else { return cursor.skipValue() }
            guard let range = cursor.string() else { return false }
            if !range.isEmpty {
                found.content = true
                onText?(&cursor, range)
            }
            return true
        }
        func delta(_ cursor: inout JSONCursor) -> Bool {
            if cursor.null() { return true }
            return cursor.members { cursor, key in
                if cursor.matches(key, "content") { return text(&cursor) }
                if cursor.matches(key, "tool_calls") || cursor.matches(key, "function_call") {
                    if cursor.null() { return true }
                    found.content = true
                }
                return cursor.skipValue()
            }
        }
        func choice(_ cursor: inout JSONCursor) -> Bool {
            found.choices = (found.choices ?? 0) + 1
            return cursor.members { cursor, key in
                if cursor.matches(key, "delta") { return delta(&cursor) }
                if cursor.matches(key, "text") { return text(&cursor) }
                if cursor.matches(key, "finish_reason") {
                    if cursor.peek() == JSONCursor.quote {
                        found.finish = true
                        return cursor.string() != nil
                    }
                }
                return cursor.skipValue()
            }
        }
        let wellFormed = cursor.members { cursor, key in
            if cursor.matches(key, "choices") {
                if cursor.null() { return true }
                found.choices = found.choices ?? 0
                return cursor.elements(choice)
            }
            if cursor.matches(key, "usage") || cursor.matches(key, "error") {
                if cursor.null() { return true }
                if cursor.matches(key, "usage") { found.usage = true } else { found.error = true }
            }
            return cursor.skipValue()
        }
        guard wellFormed, cursor.peek() == nil else { return ChunkEvent(kind: .notAChunk, hasUsage: false) }
        let kind: Kind
        if found.error {
            kind = .error
        } else if let choices = found.choices {
            kind =
                found.content ? .content : found.finish ? .finish : choices == 0 && found.usage ? .usageOnly : .roleOnly
        } else {
            kind = .notAChunk
        }
        return ChunkEvent(kind: kind, hasUsage: found.usage)
    }

    /// Calls `body` with the event's `data`, or nil when it has none.
    ///
    /// The `data:` lines are joined by newlines, one leading space dropped from each; other
    /// fields are ignored.
    private static func withData<R>(of raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        var first: Range<Int>?
        var joined: [UInt8]?
        var start = 0
        while start < raw.count {
            var end = start
            while end < raw.count && raw[end] != 0x0A { end += 1 }
            var line = start..<end
            start = end + 1
            if line.count > 0 && raw[line.upperBound - 1] == 0x0D { line = line.lowerBound..<(line.upperBound - 1) }
            guard line.count >= 5, raw[line.lowerBound] == UInt8(ascii: "d"),
                raw[line.lowerBound + 1] == UInt8(ascii: "a"),
                raw[line.lowerBound + 2] == UInt8(ascii: "t"), raw[line.lowerBound + 3] == UInt8(ascii: "a"),
                raw[line.lowerBound + 4] == UInt8(ascii: ":")
            else { continue }
            var value = (line.lowerBound + 5)..<line.upperBound
            if value.count > 0 && raw[value.lowerBound] == 0x20 { value = (value.lowerBound + 1)..<value.upperBound }
            if let previous = first {
                if joined == nil { joined = Array(raw[previous]) }
                joined?.append(0x0A)
                joined?.append(contentsOf: raw[value])
            } else {
                first = value
            }
        }
        if let joined { return joined.withUnsafeBytes { body($0) } }
        guard let first else { return body(nil) }
        return body(UnsafeRawBufferPointer(rebasing: raw[first]))
    }
}
