public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fast path for decoding the common request, with Foundation's `JSONDecoder` as the reference.
///
/// `JSONDecoder` cost 90–100 µs per request on the gateway (6 % of a paced stream's CPU, the
/// largest single item per request), most of it the `Codable` machinery, not the parse. This
/// reads the usual shape — `model`, `messages` of `role` and string `content`, `stream`,
/// `stream_options`, the numeric and string parameters, `stop` — with the relay's strict reader
/// (``ChunkScanner``) and gives up, returning nil, on anything it does not decode exactly as
/// `JSONDecoder` would: a `\u` escape anywhere, a duplicate member, content parts, tools, response
/// formats, logprobs, a fraction where an integer belongs, a missing required field, malformed
/// JSON. The caller then decodes with `JSONDecoder`, which also words every error. So the fast
/// path only ever accepts what `JSONDecoder` accepts, with the same result
/// (`CompletionRequestFastTests` checks both on a corpus and on random mutations of it).
extension CompletionRequest {
    /// The request, or nil when the fast path does not apply (decode with `JSONDecoder` then).
    public static func fastDecode(_ body: ByteBuffer) -> CompletionRequest? {
        body.withUnsafeReadableBytes { bytes -> CompletionRequest? in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
            // `\u` escapes: the reader turns a lone surrogate into U+FFFD where JSONDecoder refuses.
            if Self.hasUnicodeEscape(base, count: bytes.count) { return nil }
            var reader = ChunkScanner.Reader(bytes: bytes)
            guard let request = try? Self.read(&reader) else { return nil }
            reader.skipWhitespace()
            return reader.atEnd ? request : nil
        }
    }

    /// Whether `\u` occurs (an escaped backslash followed by `u` counts too: giving up is safe).
    private static func hasUnicodeEscape(_ base: UnsafeRawPointer, count: Int) -> Bool {
        var offset = 0
        while offset < count, let hit = memchr(base + offset, Int32(UInt8(ascii: "\\")), count - offset) {
            let index = base.distance(to: UnsafeRawPointer(hit))
            if index + 1 < count, base.load(fromByteOffset: index + 1, as: UInt8.self) == UInt8(ascii: "u") {
                return true
            }
            offset = index + 1
        }
        return false
    }

    /// Why the fast path gave up (never shown: the caller decodes again with `JSONDecoder`).
    private struct GiveUp: Error {}

    private enum Member: Int {
        case model, messages, prompt, stream, streamOptions, maxTokens, maxCompletionTokens, temperature, stop, seed
        case user, n, topP, presencePenalty, frequencyPenalty, unsupported, other

        init(_ name: UnsafeRawBufferPointer) {
            switch String(decoding: name, as: UTF8.self) {
            case "model": self = .model
            case "messages": self = .messages
            case "prompt": self = .prompt
            case "stream": self = .stream
            case "stream_options": self = .streamOptions
            case "max_tokens": self = .maxTokens
            case "max_completion_tokens": self = .maxCompletionTokens
            case "temperature": self = .temperature
            case "stop": self = .stop
            case "seed": self = .seed
            case "user": self = .user
            case "n": self = .n
            case "top_p": self = .topP
            case "presence_penalty": self = .presencePenalty
            case "frequency_penalty": self = .frequencyPenalty
            case "logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "modalities", "audio",
                "web_search_options":
                self = .unsupported
            default: self = .other
            }
        }
    }

    private static func read(_ reader: inout ChunkScanner.Reader) throws -> CompletionRequest {
        var request = CompletionRequest(model: "")
        var seen: UInt32 = 0
        try Self.members(&reader) { reader, name in
            let member = Member(name)
            if member == .unsupported { throw GiveUp() }
            if member != .other {
                let bit: UInt32 = 1 << UInt32(member.rawValue)
                if seen & bit != 0 { throw GiveUp() }  // a duplicate: which one JSONDecoder keeps is its business
                seen |= bit
            }
            switch member {
            case .model: request.model = try Self.string(&reader)
            case .messages: request.messages = try Self.nullable(&reader) { try Self.messages(&$0) }
            case .prompt: request.prompt = try Self.nullable(&reader) { try Self.string(&$0) }
            case .stream: request.stream = try Self.nullable(&reader) { try Self.bool(&$0) }
            case .streamOptions: request.streamOptions = try Self.nullable(&reader) { try Self.streamOptions(&$0) }
            case .maxTokens: request.maxTokens = try Self.nullable(&reader) { try Self.integer(&$0) }
            case .maxCompletionTokens:
                request.maxCompletionTokens = try Self.nullable(&reader) { try Self.integer(&$0) }
            case .temperature: request.temperature = try Self.nullable(&reader) { try Self.double(&$0) }
            case .stop: request.stop = try Self.nullable(&reader) { try Self.stop(&$0) }
            case .seed: request.seed = try Self.nullable(&reader) { try Self.integer(&$0) }
            case .user: request.user = try Self.nullable(&reader) { try Self.string(&$0) }
            case .n: request.n = try Self.nullable(&reader) { try Self.integer(&$0) }
            case .topP: request.topP = try Self.nullable(&reader) { try Self.double(&$0) }
            case .presencePenalty: request.presencePenalty = try Self.nullable(&reader) { try Self.double(&$0) }
            case .frequencyPenalty: request.frequencyPenalty = try Self.nullable(&reader) { try Self.double(&$0) }
            case .unsupported: throw GiveUp()
            case .other: try reader.skipValue(depth: 1)  // JSONDecoder ignores unknown members
            }
        }
        guard seen & (1 << UInt32(Member.model.rawValue)) != 0 else { throw GiveUp() }
        return request
    }

    /// Walks an object's members; `member` gets the raw name (no escapes: they were refused).
    private static func members(
        _ reader: inout ChunkScanner.Reader, depth: Int = 0,
        _ member: (inout ChunkScanner.Reader, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try reader.expect(UInt8(ascii: "{"))
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "}") {
            reader.position += 1
            return
        }
        while true {
            reader.skipWhitespace()
            let range = try reader.stringRange()
            guard let name = reader.rawContent(range) else { throw GiveUp() }
            try reader.expect(UInt8(ascii: ":"))
            reader.skipWhitespace()
            try member(&reader, name)
            reader.skipWhitespace()
            guard let next = reader.peek() else { throw GiveUp() }
            reader.position += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw GiveUp() }
        }
    }

    /// `null` is an absent optional, as `decodeIfPresent` reads it.
    private static func nullable<T>(
        _ reader: inout ChunkScanner.Reader, _ value: (inout ChunkScanner.Reader) throws -> T
    ) throws -> T? {
        if reader.literal("null") { return nil }
        return try value(&reader)
    }

    private static func string(_ reader: inout ChunkScanner.Reader) throws -> String {
        guard reader.peek() == UInt8(ascii: "\"") else { throw GiveUp() }
        return try reader.string()
    }

    private static func bool(_ reader: inout ChunkScanner.Reader) throws -> Bool {
        if reader.literal("true") { return true }
        if reader.literal("false") { return false }
        throw GiveUp()
    }

    /// Plain digits only: a fraction or an exponent is JSONDecoder's to judge.
    private static func integer(_ reader: inout ChunkScanner.Reader) throws -> Int {
        guard let value = try reader.plainInteger() else { throw GiveUp() }
        return value
    }

    private static func double(_ reader: inout ChunkScanner.Reader) throws -> Double {
        let start = reader.position
        try reader.number()
        let text = String(
            decoding: UnsafeRawBufferPointer(rebasing: reader.bytes[start..<reader.position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw GiveUp() }
        // An underflow to zero is JSONDecoder's to judge.
        if value == 0, text.utf8.contains(where: { (0x31...0x39).contains($0) }) { throw GiveUp() }
        return value
    }

    private static func messages(_ reader: inout ChunkScanner.Reader) throws -> [ChatMessage] {
        var messages: [ChatMessage] = []
        try reader.expect(UInt8(ascii: "["))
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "]") {
            reader.position += 1
            return messages
        }
        while true {
            reader.skipWhitespace()
            var role: String?
            var content: String?
            var isNull = false
            try Self.members(&reader) { reader, name in
                switch String(decoding: name, as: UTF8.self) {
                case "role":
                    guard role == nil else { throw GiveUp() }
                    role = try Self.string(&reader)
                case "content":
                    guard content == nil else { throw GiveUp() }
                    let text = try Self.nullable(&reader) { try Self.string(&$0) }
                    isNull = text == nil
                    content = text ?? ""
                case "tool_calls", "tool_call_id", "function_call":
                    throw GiveUp()  // a turn of function calling: the validator checks them (JSONDecoder reads them)
                default: try reader.skipValue(depth: 3)
                }
            }
            guard let role, let content else { throw GiveUp() }
            // A null content only in the turns that may hold no text; JSONDecoder's path refuses the rest.
            if isNull, role != "assistant", role != "function" { throw GiveUp() }
            messages.append(ChatMessage(role: role, content: content))
            reader.skipWhitespace()
            guard let next = reader.peek() else { throw GiveUp() }
            reader.position += 1
            if next == UInt8(ascii: "]") { return messages }
            guard next == UInt8(ascii: ",") else { throw GiveUp() }
        }
    }

    private static func streamOptions(_ reader: inout ChunkScanner.Reader) throws -> StreamOptions {
        var includeUsage: Bool?
        var seen = false
        try Self.members(&reader, depth: 1) { reader, name in
            guard String(decoding: name, as: UTF8.self) == "include_usage" else {
                return try reader.skipValue(depth: 2)
            }
            guard !seen else { throw GiveUp() }
            seen = true
            includeUsage = try Self.nullable(&reader) { try Self.bool(&$0) }
        }
        return StreamOptions(includeUsage: includeUsage)
    }

    private static func stop(_ reader: inout ChunkScanner.Reader) throws -> StopSequences {
        if reader.peek() == UInt8(ascii: "\"") { return StopSequences([try reader.string()]) }
        var values: [String] = []
        try reader.expect(UInt8(ascii: "["))
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "]") {
            reader.position += 1
            return StopSequences(values)
        }
        while true {
            reader.skipWhitespace()
            values.append(try Self.string(&reader))
            reader.skipWhitespace()
            guard let next = reader.peek() else { throw GiveUp() }
            reader.position += 1
            if next == UInt8(ascii: "]") { return StopSequences(values) }
            guard next == UInt8(ascii: ",") else { throw GiveUp() }
        }
    }
}
