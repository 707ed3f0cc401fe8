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
                return .other
            case 8: return equals("logprobs") ? .logprobs : .other
            case 10: return equals("tool_calls") ? .toolCalls : .other
            case 13:
                if equals("finish_reason") { return .finishReason }
                if equals("function_call") { return .functionCall }
                if equals("prompt_tokens") { return .promptTokens }
                return .other
            case 17: return equals("completion_tokens") ? .completionTokens : .other
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
                case .text: try self.content(of: &choice, mode, depth: depth + 1)
                case .finishReason: choice.finishReason = try self.optionalString(depth: depth + 1)
                case .logprobs: choice.hasLogprobs = try !self.skipNonNull(depth: depth + 1)
                case .delta:
                    guard self.peek() == UInt8(ascii: "{") else {
                        try self.skipValue(depth: depth + 1)
                        continue
                    }
                    try self.enterObject(depth: depth + 1)
                    var deltaMembers = 0
                    while let key = try self.nextMember(&deltaMembers) {
                        switch key {
                        case .role: choice.hasRole = try self.optionalString(depth: depth + 2) != nil
                        case .content: try self.content(of: &choice, mode, depth: depth + 2)
                        case .toolCalls, .functionCall:
                            if try !self.skipNonNull(depth: depth + 2) { choice.hasToolCalls = true }
                        default: try self.skipValue(depth: depth + 2)
                        }
                    }
                default: try self.skipValue(depth: depth + 1)
                }
            }
            return choice
        }

        /// A choice's text: decoded, or the range of its string token.
        @inline(__always) mutating func content(of choice: inout Choice, _ mode: ContentMode, depth: Int) throws(Malformed) {
            switch mode {
            case .decoded: choice.content = try self.optionalString(depth: depth)
            case .token:
                if self.peek() == UInt8(ascii: "\"") {
                    choice.contentToken = try self.stringRange()
                } else {
                    choice.contentToken = nil
                    try self.skipValue(depth: depth)
                }
            }
        }

        /// Skips a value; true when it was `null`.
        mutating func skipNonNull(depth: Int) throws(Malformed) -> Bool {
            if self.literal("null") { return true }
            try self.skipValue(depth: depth)
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
            if let next = self.peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
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

        /// The raw bytes between the quotes of the string token ``stringRange()`` just read, when it has
        /// no escapes; nil when it has some.
        @inline(__always) func rawContent(_ range: Range<Int>) -> UnsafeRawBufferPointer? {
            guard !self.lastStringEscaped else { return nil }
            return UnsafeRawBufferPointer(rebasing: self.bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        }

        /// Validates a string token and returns its range, quotes included.
        mutating func stringRange() throws(Malformed) -> Range<Int> {
            let start = self.position
            guard self.peek() == UInt8(ascii: "\"") else { throw self.fail() }
            self.position += 1
            self.lastStringEscaped = false
            while self.position < self.bytes.count {
                // Plain ASCII runs (almost all of a chunk's strings) are skipped eight bytes at a time.
                self.position = Self.plainRun(self.bytes, from: self.position)
                guard self.position < self.bytes.count else { break }
                let byte = self.bytes[self.position]
                switch byte {
                case UInt8(ascii: "\""):
                    self.position += 1
                    return start..<self.position
                case UInt8(ascii: "\\"):
                    self.position += 1
                    self.lastStringEscaped = true
                    guard let escaped = self.peek() else { throw self.fail() }
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        self.position += 1
                    case UInt8(ascii: "u"):
                        guard self.position + 4 < self.bytes.count else { throw self.fail() }
                        for offset in 1...4 where Self.hex(self.bytes[self.position + offset]) == nil {
                            throw self.fail()
                        }
                        self.position += 5
                    default: throw self.fail()
                    }
                case 0..<0x20: throw self.fail()
                case 0x20..<0x80: self.position += 1
                default: try self.utf8Scalar()
                }
            }
            throw self.fail()
        }

        /// The end of the run of bytes from `start` that a string token may hold as they are:
        /// printable ASCII other than `"` and `\`. The one unsafe fast path of the scanner (eight bytes
        /// per step, SWAR); `ChunkScannerTests` checks it against ``isPlain(_:)`` byte by byte.
        package static func plainRun(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
            guard let base = bytes.baseAddress else { return start }
            let end = bytes.count
            var index = start
            let ones: UInt64 = 0x0101_0101_0101_0101
            let high: UInt64 = 0x8080_8080_8080_8080
            while index + 8 <= end {
                let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                // Each term has a byte's high bit set when that byte (or, in the zero tests, a byte
                // above a match) is one to stop at; they never miss one (Hacker's Delight 6-1).
                let below0x20 = (word &- ones &* 0x20) & ~word
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let stops = (word | below0x20 | ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)) & high
                if stops != 0 {
                    #if _endian(little)
                        // Flags above a match can be false (a borrow), never below it: the lowest is the stop.
                        return index + stops.trailingZeroBitCount >> 3
                    #else
                        break
                    #endif
                }
                index += 8
            }
            while index < end, Self.isPlain(base.load(fromByteOffset: index, as: UInt8.self)) { index += 1 }
            return index
        }

        /// Whether a string token may hold `byte` as it is (the safe definition of ``plainRun(_:from:)``).
        @inline(__always) package static func isPlain(_ byte: UInt8) -> Bool {
            byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
        }

        /// Validates one multi-byte UTF-8 scalar (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func utf8Scalar() throws(Malformed) {
            let b0 = self.bytes[self.position]
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                upper = 0x9F
            case 0xF0:
                length = 4
                lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                upper = 0x8F
            default: throw self.fail()
            }
            guard self.position + length <= self.bytes.count else { throw self.fail() }
            let b1 = self.bytes[self.position + 1]
            guard b1 >= lower && b1 <= upper else { throw self.fail() }
            for offset in 2..<length where self.bytes[self.position + offset] & 0xC0 != 0x80 {
                throw self.fail()
            }
            self.position += length
        }

        static func hex(_ byte: UInt8) -> UInt32? {
            switch byte {
            case 0x30...0x39: UInt32(byte - 0x30)
            case 0x41...0x46: UInt32(byte - 0x41 + 10)
            case 0x61...0x66: UInt32(byte - 0x61 + 10)
            default: nil
            }
        }

        /// Reads and decodes a string token.
        mutating func string() throws(Malformed) -> String {
            let range = try self.stringRange()
            if let raw = self.rawContent(range) { return String(decoding: raw, as: UTF8.self) }
            var out: [UInt8] = []
            out.reserveCapacity(range.count)
            self.decodeEscaped(range, into: &out)
            return String(decoding: out, as: UTF8.self)
        }

        /// Appends the UTF-8 of the string token at `range` (quotes included, validated by
        /// ``stringRange()``) to `out`: its escapes decoded, a `\u` surrogate pair joined, a lone
        /// surrogate as U+FFFD.
        func decodeEscaped(_ range: Range<Int>, into out: inout [UInt8]) {
            var index = range.lowerBound + 1
            let end = range.upperBound - 1
            while index < end {
                let byte = self.bytes[index]
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    index += 1
                    continue
                }
                let escaped = self.bytes[index + 1]
                index += 2
                switch escaped {
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = self.hex4(at: index)
                    index += 4
                    if (0xD800...0xDBFF).contains(scalar), index + 6 <= end, self.bytes[index] == UInt8(ascii: "\\"),
                        self.bytes[index + 1] == UInt8(ascii: "u")
                    {
                        let low = self.hex4(at: index + 2)
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            index += 6
                        }
                    }
                    // A lone surrogate becomes U+FFFD: the output stays valid UTF-8.
                    let value = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(value)).utf8))
                default: out.append(escaped)
                }
            }
        }

        func hex4(at index: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in 0..<4 { value = value << 4 | (Self.hex(self.bytes[index + offset]) ?? 0) }
            return value
        }
    }
}
