/// A forward-only cursor over JSON bytes, for reading a few fields without decoding into types.
///
/// It checks the structure it walks (objects, arrays, strings) and skips everything else by
/// bracket matching, without recursion, so hostile input (deep nesting, huge strings, invalid
/// UTF-8) costs time linear in its size and no stack. It is not a validator: a skipped number
/// or literal is taken as whatever runs up to the next delimiter.
struct JSONCursor {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")

    /// The next non-whitespace byte, without consuming it.
    mutating func peek() -> UInt8? {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return self.bytes[self.index]
            }
        }
        return nil
    }

    /// Consumes `byte` if it comes next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard self.peek() == byte else { return false }
        self.index += 1
        return true
    }

    /// Consumes a string and returns the range of its contents (escapes left in place).
    mutating func string() -> Range<Int>? {
        guard self.take(Self.quote) else { return nil }
        let start = self.index
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == Self.quote {
                self.index += 1
                return start..<(self.index - 1)
            }
            if byte < 0x20 { return nil }
            self.index += byte == Self.backslash ? 2 : 1
        }
        return nil
    }

    /// Consumes `null` if it comes next.
    mutating func null() -> Bool {
        guard self.peek() == UInt8(ascii: "n"), self.index + 4 <= self.bytes.count,
            self.bytes[self.index + 1] == UInt8(ascii: "u"), self.bytes[self.index + 2] == UInt8(ascii: "l"),
            self.bytes[self.index + 3] == UInt8(ascii: "l")
        else { return false }
        self.index += 4
        return true
    }

    /// Consumes one value of any kind; false when the input ends or is malformed on the way.
    mutating func skipValue() -> Bool {
        guard let first = self.peek() else { return false }
        switch first {
        case Self.quote:
            return self.string() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case Self.quote:
                    guard self.string() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        self.index += 1
                        return true
                    }
                default:
                    break
                }
                self.index += 1
            }
            return false
        case UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ":"):
            return false
        default:
            let start = self.index
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
                default:
                    self.index += 1
                    continue
                }
                break
            }
            return self.index > start
        }
    }

    /// Walks an object's members.
    ///
    /// `member` must consume each value. False when malformed or when `member` returns false.
    mutating func members(_ member: (inout JSONCursor, Range<Int>) -> Bool) -> Bool {
        guard self.take(UInt8(ascii: "{")) else { return false }
        if self.take(UInt8(ascii: "}")) { return true }
        while true {
            guard let key = self.string(), self.take(UInt8(ascii: ":")), member(&self, key) else { return false }
            if self.take(UInt8(ascii: ",")) { continue }
            return self.take(UInt8(ascii: "}"))
        }
    }

    /// Walks an array's elements; `element` must consume each one.
    mutating func elements(_ element: (inout JSONCursor) -> Bool) -> Bool {
        guard self.take(UInt8(ascii: "[")) else { return false }
        if self.take(UInt8(ascii: "]")) { return true }
        while true {
            guard element(&self) else { return false }
            if self.take(UInt8(ascii: ",")) { continue }
            return self.take(UInt8(ascii: "]"))
        }
    }

    /// Whether the bytes in `range` spell `key` exactly.
    func matches(_ range: Range<Int>, _ key: StaticString) -> Bool {
        guard range.count == key.utf8CodeUnitCount else { return false }
        return key.withUTF8Buffer { key in
            var i = 0
            while i < key.count {
                if self.bytes[range.lowerBound + i] != key[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Appends the string contents in `range`, with JSON escapes decoded, to `text`.
    ///
    /// Invalid UTF-8 and lone surrogates become U+FFFD.
    func appendUnescaped(_ range: Range<Int>, to text: inout String) {
        let slice = UnsafeRawBufferPointer(rebasing: self.bytes[range])
        guard slice.contains(Self.backslash) else {
            text += String(decoding: slice, as: UTF8.self)
            return
        }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var i = 0
        var pendingHigh: UInt32?
        func hex(_ at: Int) -> UInt32? {
            guard at + 4 <= slice.count else { return nil }
            var value: UInt32 = 0
            for byte in slice[at..<(at + 4)] {
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: return nil
                }
                value = value << 4 | digit
            }
            return value
        }
        func emit(_ scalar: UInt32) {
            UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { out.append($0) }
        }
        while i < slice.count {
            let byte = slice[i]
            guard byte == Self.backslash, i + 1 < slice.count else {
                if let high = pendingHigh {
                    emit(high)  // a lone high surrogate: U+FFFD
                    pendingHigh = nil
                }
                out.append(byte)
                i += 1
                continue
            }
            let escaped = slice[i + 1]
            i += 2
            if escaped == UInt8(ascii: "u"), let value = hex(i) {
                i += 4
                if (0xD800..<0xDC00).contains(value) {
                    if let high = pendingHigh { emit(high) }
                    pendingHigh = value
                    continue
                }
                if (0xDC00..<0xE000).contains(value), let high = pendingHigh {
                    emit(0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00))
                    pendingHigh = nil
                    continue
                }
                if let high = pendingHigh { emit(high) }
                pendingHigh = nil
                emit(value)
                continue
            }
            if let high = pendingHigh { emit(high) }
            pendingHigh = nil
            switch escaped {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            default: out.append(escaped)  // \" \\ \/ (and anything else, verbatim)
            }
        }
        if let high = pendingHigh { emit(high) }
        text += String(decoding: out, as: UTF8.self)
    }
}
