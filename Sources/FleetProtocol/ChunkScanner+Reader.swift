#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension ChunkScanner {
    /// Walks a validated-as-it-goes JSON text.
    package struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0
        /// Whether the last string token ``stringRange()`` read held an escape.
        var lastStringEscaped = false

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var atEnd: Bool { self.position >= self.bytes.count }

        @inline(__always) func peek() -> UInt8? { self.position < self.bytes.count ? self.bytes[self.position] : nil }

        @inline(__always) mutating func skipWhitespace() {
            while self.position < self.bytes.count {
                switch self.bytes[self.position] {
                case 0x20, 0x09, 0x0A, 0x0D: self.position += 1
                default: return
                }
            }
        }

        func fail() -> Malformed { Malformed(offset: self.position) }

        @inline(__always) mutating func expect(_ byte: UInt8) throws(Malformed) {
            self.skipWhitespace()
            guard self.peek() == byte else { throw self.fail() }
            self.position += 1
        }

        /// The member names the scanner acts on; everything else is `.other`.
        enum Key {
            case id, object, model, created, choices, usage, error, index, delta, role, content, text
            case finishReason, toolCalls, functionCall, logprobs, promptTokens, completionTokens, other
            /// `reasoning_content` (llama.cpp, vLLM, DeepSeek) or `reasoning` (vLLM's newer name).
            case reasoning
            /// `refusal`: the model declined.
            case refusal
            /// A whole answer's choice (``AnswerScanner``).
            case message
        }

        static func key(_ name: UnsafeRawBufferPointer) -> Key {
            func equals(_ literal: StaticString) -> Bool {
                literal.utf8CodeUnitCount == name.count
                    && memcmp(literal.utf8Start, name.baseAddress!, name.count) == 0
            }
            switch name.count {
            case 2: return equals("id") ? .id : .other
            case 4: return equals("text") ? .text : equals("role") ? .role : .other
            case 5:
                if equals("model") { return .model }
                if equals("usage") { return .usage }
                if equals("error") { return .error }
                if equals("index") { return .index }
                if equals("delta") { return .delta }
                return .other
            case 6: return equals("object") ? .object : .other
            case 7:
                if equals("created") { return .created }
                if equals("choices") { return .choices }
                if equals("content") { return .content }
                if equals("message") { return .message }
                if equals("refusal") { return .refusal }
                return .other
            case 8: return equals("logprobs") ? .logprobs : .other
            case 9: return equals("reasoning") ? .reasoning : .other
            case 10: return equals("tool_calls") ? .toolCalls : .other
            case 13:
                if equals("finish_reason") { return .finishReason }
                if equals("function_call") { return .functionCall }
                if equals("prompt_tokens") { return .promptTokens }
                return .other
            case 17:
                if equals("completion_tokens") { return .completionTokens }
                if equals("reasoning_content") { return .reasoning }
                return .other
            default: return .other
            }
        }

        /// Opens an object; then ``nextMember(_:)`` until it returns nil. A loop, not a closure per
        /// member: a closure that mutates the caller's chunk costs a dynamic exclusivity check per
        /// access to the captured variable (callgrind: ~9 % of the relay's instructions).
        mutating func enterObject(depth: Int) throws(Malformed) {
            guard depth <= ChunkScanner.maxDepth else { throw self.fail() }
            try self.expect(UInt8(ascii: "{"))
        }

        /// The next member's key, with the reader at its value (which the caller must read or
        /// skip), or nil once the object closed. `count` starts at 0 and is the caller's.
        mutating func nextMember(_ count: inout Int) throws(Malformed) -> Key? {
            self.skipWhitespace()
            if count > 0 {
                guard let next = self.peek() else { throw self.fail() }
                self.position += 1
                if next == UInt8(ascii: "}") { return nil }
                guard next == UInt8(ascii: ",") else { throw self.fail() }
                self.skipWhitespace()
            } else if self.peek() == UInt8(ascii: "}") {
                self.position += 1
                return nil
            }
            count += 1
            let range = try self.stringRange()
            let key: Key
            if let raw = self.rawContent(range) {
                key = Self.key(raw)
            } else {
                // An escaped name: decode it to compare.
                var copy = self
                copy.position = range.lowerBound
                let name = try copy.string()
                key = name.utf8.withContiguousStorageIfAvailable { Self.key(UnsafeRawBufferPointer($0)) } ?? .other
            }
            try self.expect(UInt8(ascii: ":"))
            self.skipWhitespace()
            return key
        }

        /// Opens an array; then ``nextElement(_:)`` until it returns false.
        mutating func enterArray(depth: Int) throws(Malformed) {
            guard depth <= ChunkScanner.maxDepth else { throw self.fail() }
            try self.expect(UInt8(ascii: "["))
        }

        /// Whether another element follows (the reader at it), or the array closed.
        mutating func nextElement(_ count: inout Int) throws(Malformed) -> Bool {
            self.skipWhitespace()
            if count > 0 {
                guard let next = self.peek() else { throw self.fail() }
                self.position += 1
                if next == UInt8(ascii: "]") { return false }
                guard next == UInt8(ascii: ",") else { throw self.fail() }
                self.skipWhitespace()
            } else if self.peek() == UInt8(ascii: "]") {
                self.position += 1
                return false
            }
            count += 1
            return true
        }

        mutating func choice(depth: Int, content mode: ContentMode = .decoded) throws(Malformed) -> Choice {
            var choice = Choice()
            guard self.peek() == UInt8(ascii: "{") else {
                try self.skipValue(depth: depth)
                return choice
            }
            try self.enterObject(depth: depth)
            var members = 0
            while let key = try self.nextMember(&members) {
                switch key {
                case .index: choice.index = try self.integerOrSkip(depth: depth + 1) ?? 0
                case .text:
                    choice.hasText = true
                    try self.content(of: &choice, mode, depth: depth + 1)
                case .finishReason: choice.finishReason = try self.optionalString(depth: depth + 1)
                case .logprobs: choice.hasLogprobs = try !self.skipNonNull(depth: depth + 1)
                case .delta:
                    guard self.peek() == UInt8(ascii: "{") else {
                        try self.skipValue(depth: depth + 1)
                        continue
                    }
                    choice.hasDelta = true
                    try self.enterObject(depth: depth + 1)
                    var deltaMembers = 0
                    while let key = try self.nextMember(&deltaMembers) {
                        switch key {
                        case .role: choice.hasRole = try self.optionalString(depth: depth + 2) != nil
                        case .content: try self.content(of: &choice, mode, depth: depth + 2)
                        case .toolCalls, .functionCall:
                            if try self.skipHasContent(depth: depth + 2) { choice.hasToolCalls = true }
                        case .reasoning where self.peek() == UInt8(ascii: "\""):
                            // A reasoning model's thinking, before the text: output, and its string
                            // token is kept for a relay that carries it (the car path, `stream: false`).
                            let range = try self.stringRange()
                            if range.count > 2 {
                                choice.hasOtherOutput = true
                                choice.reasoningToken = range
                            }
                        case .refusal where self.peek() == UInt8(ascii: "\""):
                            // The model declined: output, kept for a relay that re-frames it (the car
                            // path, `stream: false`, the Responses API), which dropped it (helper-64).
                            let range = try self.stringRange()
                            if range.count > 2 {
                                choice.hasOtherOutput = true
                                choice.refusalToken = range
                            }
                        default:
                            // A reasoning model's `reasoning_content`, before and between the text: output,
                            // not a preamble to hold (only four are held; the rest were dropped).
                            if self.peek() == UInt8(ascii: "\"") {
                                if try self.stringRange().count > 2 { choice.hasOtherOutput = true }
                            } else if try self.skipHasContent(depth: depth + 2) {
                                choice.hasOtherOutput = true
                            }
                        }
                    }
                default: try self.skipValue(depth: depth + 1)
                }
            }
            return choice
        }

        /// A choice's text: decoded, or the range of its string token. A string or `null`: any other
        /// value is malformed (helper-97: `"content": 12345` was skipped, and the chunk passed as if it
        /// carried nothing, so its text was lost without the attempt failing).
        @inline(__always) mutating func content(of choice: inout Choice, _ mode: ContentMode, depth: Int)
            throws(Malformed)
        {
            guard self.peek() == UInt8(ascii: "\"") else {
                guard self.literal("null") else { throw self.fail() }
                choice.content = nil
                choice.contentToken = nil
                return
            }
            switch mode {
            case .decoded: choice.content = try self.string()
            case .token: choice.contentToken = try self.stringRange()
            }
        }

        /// Skips a value; true when it was `null`.
        mutating func skipNonNull(depth: Int) throws(Malformed) -> Bool {
            if self.literal("null") { return true }
            try self.skipValue(depth: depth)
            return false
        }

        /// Skips a value; whether it holds anything: not `null`, `[]` or `{}` (vLLM sends
        /// `"tool_calls": []` with every content delta: no call).
        mutating func skipHasContent(depth: Int) throws(Malformed) -> Bool {
            self.skipWhitespace()
            if self.literal("null") { return false }
            let start = self.position
            try self.skipValue(depth: depth)
            guard start < self.bytes.count,
                self.bytes[start] == UInt8(ascii: "[") || self.bytes[start] == UInt8(ascii: "{")
            else { return true }
            var inner = start + 1
            let close = self.position - 1
            while inner < close {
                switch self.bytes[inner] {
                case 0x20, 0x09, 0x0A, 0x0D: inner += 1
                default: return true
                }
            }
            return false
        }

        /// A string, or nil for `null`; any other type is skipped as nil.
        mutating func optionalString(depth: Int) throws(Malformed) -> String? {
            if self.peek() == UInt8(ascii: "\"") { return try self.string() }
            try self.skipValue(depth: depth)
            return nil
        }

        /// An integer, or nil for any other value (skipped).
        mutating func integerOrSkip(depth: Int) throws(Malformed) -> Int? {
            guard let first = self.peek(), first == UInt8(ascii: "-") || (0x30...0x39).contains(first) else {
                try self.skipValue(depth: depth)
                return nil
            }
            return try self.plainInteger()
        }

        /// Reads a number; its value when it is plain digits (optionally negative) that fit an
        /// `Int`, nil for a fraction, an exponent or an overflow. One pass over the digits; a fraction
        /// or an exponent is read again by ``number()`` (`ChunkScannerReaderTests` checks it against
        /// ``number()`` and a second pass).
        mutating func plainInteger() throws(Malformed) -> Int? {
            let start = self.position
            let negative = self.peek() == UInt8(ascii: "-")
            if negative { self.position += 1 }
            let digitsStart = self.position
            var value = 0
            var overflow = false
            while self.position < self.bytes.count {
                let digit = self.bytes[self.position] &- 0x30
                guard digit < 10 else { break }
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (plus, o2) = times.addingReportingOverflow(Int(digit))
                overflow = overflow || o1 || o2
                value = plus
                self.position += 1
            }
            let digits = self.position - digitsStart
            if digits == 0 { throw self.fail() }
            if digits > 1 && self.bytes[digitsStart] == UInt8(ascii: "0") {
                // JSON's number is the "0"; the digits after it are the caller's to refuse.
                self.position = digitsStart + 1
                return 0
            }
            if let next = self.peek(),
                next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E")
            {
                self.position = start
                try self.number()
                return nil
            }
            return overflow ? nil : (negative ? -value : value)
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard self.position + count <= self.bytes.count,
                memcmp(self.bytes.baseAddress! + self.position, word.utf8Start, count) == 0
            else { return false }
            self.position += count
            return true
        }

        mutating func skipValue(depth: Int) throws(Malformed) {
            guard depth <= ChunkScanner.maxDepth else { throw self.fail() }
            self.skipWhitespace()
            switch self.peek() {
            case UInt8(ascii: "{"):
                try self.enterObject(depth: depth)
                var members = 0
                while try self.nextMember(&members) != nil { try self.skipValue(depth: depth + 1) }
            case UInt8(ascii: "["):
                try self.enterArray(depth: depth)
                var elements = 0
                while try self.nextElement(&elements) { try self.skipValue(depth: depth + 1) }
            case UInt8(ascii: "\""): _ = try self.stringRange()
            case UInt8(ascii: "t"): if !self.literal("true") { throw self.fail() }
            case UInt8(ascii: "f"): if !self.literal("false") { throw self.fail() }
            case UInt8(ascii: "n"): if !self.literal("null") { throw self.fail() }
            default: try self.number()
            }
        }

        /// A JSON number (validated, not converted).
        mutating func number() throws(Malformed) {
            func digits(_ reader: inout Reader) -> Int {
                var n = 0
                while let byte = reader.peek(), (0x30...0x39).contains(byte) {
                    reader.position += 1
                    n += 1
                }
                return n
            }
            if self.peek() == UInt8(ascii: "-") { self.position += 1 }
            if self.peek() == UInt8(ascii: "0") {
                self.position += 1
            } else if digits(&self) == 0 {
                throw self.fail()
            }
            if self.peek() == UInt8(ascii: ".") {
                self.position += 1
                guard digits(&self) > 0 else { throw self.fail() }
            }
            if self.peek() == UInt8(ascii: "e") || self.peek() == UInt8(ascii: "E") {
                self.position += 1
                if self.peek() == UInt8(ascii: "+") || self.peek() == UInt8(ascii: "-") { self.position += 1 }
                guard digits(&self) > 0 else { throw self.fail() }
            }
        }
    }
}
