#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The reader's strings: validating a string token (escapes, UTF-8, the eight-bytes-at-a-time plain
/// run) and decoding one into a `String`.
extension ChunkScanner.Reader {
    /// The raw bytes between the quotes of the string token ``stringRange()`` just read, when it has
    /// no escapes; nil when it has some.
    @inline(__always) func rawContent(_ range: Range<Int>) -> UnsafeRawBufferPointer? {
        guard !self.lastStringEscaped else { return nil }
        return UnsafeRawBufferPointer(rebasing: self.bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
    }

    /// Validates a string token and returns its range, quotes included.
    mutating func stringRange() throws(ChunkScanner.Malformed) -> Range<Int> {
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
    mutating func utf8Scalar() throws(ChunkScanner.Malformed) {
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
    mutating func string() throws(ChunkScanner.Malformed) -> String {
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
