import Foundation
public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Edits the top level of a JSON object body without decoding and re-encoding it, so every field
/// the client sent reaches the upstream byte for byte except the ones the gateway must change.
public enum JSONBody {
    /// One top-level member: its name and the byte range of its value (relative to the reader index).
    public struct Member: Sendable, Hashable {
        public var name: String
        /// From the opening quote of the name to the end of the value.
        public var range: Range<Int>
        public var value: Range<Int>
    }

    /// The top-level members of a JSON object, in order; nil when `body` is not one JSON object.
    /// A leading UTF-8 byte order mark is skipped, as the request validator's JSONDecoder skips it
    /// (RFC 8259 §8.1 lets a parser ignore one): a body the validator accepted must be editable,
    /// or dispatch would send a central endpoint or a continuation the unedited body (#20, found
    /// by the `request` fuzzer).
    public static func members(of body: ByteBuffer) -> [Member]? {
        body.withUnsafeReadableBytes { bytes -> [Member]? in
            var reader = ChunkScanner.Reader(bytes: bytes)
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.position = 3 }
            var members: [Member] = []
            members.reserveCapacity(8)  // one allocation for a usual request, not three
            do throws(ChunkScanner.Malformed) {
                try reader.expect(UInt8(ascii: "{"))
                reader.skipWhitespace()
                if reader.peek() == UInt8(ascii: "}") {
                    reader.position += 1
                } else {
                    while true {
                        reader.skipWhitespace()
                        let start = reader.position
                        let name = try reader.string()
                        try reader.expect(UInt8(ascii: ":"))
                        reader.skipWhitespace()
                        let valueStart = reader.position
                        try reader.skipValue(depth: 2)
                        members.append(
                            Member(name: name, range: start..<reader.position, value: valueStart..<reader.position))
                        reader.skipWhitespace()
                        guard let next = reader.peek() else { return nil }
                        reader.position += 1
                        if next == UInt8(ascii: "}") { break }
                        guard next == UInt8(ascii: ",") else { return nil }
                    }
                }
                reader.skipWhitespace()
                return reader.atEnd ? members : nil
            } catch {
                return nil
            }
        }
    }

    /// The name of the first member that repeats an earlier one's, or nil. Parsers disagree on which of
    /// two duplicates wins (Foundation keeps the first, Python's json the last), so a gateway that
    /// checks one and forwards the bytes would let the upstream act on the other.
    public static func firstDuplicate(in members: [Member]) -> String? {
        if members.count <= 16 {  // a usual request: no set to allocate
            for index in members.indices.dropFirst()
            where members[..<index].contains(where: { $0.name == members[index].name }) {
                return members[index].name
            }
            return nil
        }
        var seen = Set<String>(minimumCapacity: members.count)
        return members.first { !seen.insert($0.name).inserted }?.name
    }

    /// `body` without the members named in `removing`, with `appending` (name, raw JSON value)
    /// added at the end. Nil when `body` is not a JSON object.
    public static func editing(
        _ body: ByteBuffer, removing: Set<String>, appending: [(String, String)]
    ) -> ByteBuffer? {
        guard let members = Self.members(of: body) else { return nil }
        return Self.editing(body, members: members, removing: removing, appending: appending)
    }

    /// ``editing(_:removing:appending:)`` with the body's members already read (``members(of:)``
    /// of this very `body`): the request validator reads them once, and central's body is edited
    /// without a second pass over it.
    public static func editing(
        _ body: ByteBuffer, members: [Member], removing: Set<String>, appending: [(String, String)]
    ) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: body.readableBytes + 64)
        out.writeInteger(UInt8(ascii: "{"))
        var first = true
        body.withUnsafeReadableBytes { bytes in
            for member in members where !removing.contains(member.name) {
                if !first { out.writeInteger(UInt8(ascii: ",")) }
                first = false
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[member.range]))
            }
        }
        for (name, value) in appending {
            if !first { out.writeInteger(UInt8(ascii: ",")) }
            first = false
            out.writeInteger(UInt8(ascii: "\""))
            out.writeString(name)
            out.writeStaticString("\":")
            out.writeString(value)
        }
        out.writeInteger(UInt8(ascii: "}"))
        return out
    }

    /// A continuation from text (DESIGN.md, Contracts: continuation): `body` with the delivered text
    /// as a final assistant message (chat) or appended to the prompt (legacy completions), and the
    /// output limit reduced by the `delivered` tokens. Nil when the body cannot be edited.
    public static func continuation(of body: ByteBuffer, text: String, delivered: Int) -> ByteBuffer? {
        guard let members = Self.members(of: body) else { return nil }
        var remove: Set<String> = []
        var append: [(String, String)] = []
        var escaped = ByteBuffer()
        Self.writeJSONString(text, into: &escaped)
        let textJSON = String(buffer: escaped)
        if let messages = Self.rawValue(of: "messages", in: body, members: members) {
            var raw = String(buffer: messages).trimmingSuffixWhitespace()
            guard raw.hasSuffix("]") else { return nil }
            raw.removeLast()
            let separator = raw.trimmingSuffixWhitespace().hasSuffix("[") ? "" : ","
            remove.insert("messages")
            append.append(("messages", raw + separator + "{\"role\":\"assistant\",\"content\":" + textJSON + "}]"))
        } else if let prompt = Self.rawValue(of: "prompt", in: body, members: members) {
            let original = prompt.withUnsafeReadableBytes { ChunkScanner.string($0, range: 0..<$0.count) }
            var joined = ByteBuffer()
            Self.writeJSONString(original + text, into: &joined)
            remove.insert("prompt")
            append.append(("prompt", String(buffer: joined)))
        } else {
            return nil
        }
        for name in ["max_tokens", "max_completion_tokens"] {
            guard let raw = Self.rawValue(of: name, in: body, members: members),
                let limit = Int(String(buffer: raw).trimmingSuffixWhitespace())
            else { continue }
            remove.insert(name)
            append.append((name, String(max(1, limit - delivered))))
        }
        return Self.editing(body, removing: remove, appending: append)
    }

    /// Writes `text` as a JSON string token: `"`, `\` and control characters escaped, everything
    /// else as it is. Runs of bytes that need no escape are written with one copy each (byte by
    /// byte, each `ByteBuffer` write cost ~80 instructions: ~20 k a stream in the agent, issue #19);
    /// `JSONStringTokenTests` checks it against the byte-wise definition.
    public static func writeJSONString(_ text: String, into out: inout ByteBuffer) {
        var text = text
        text.withUTF8 { Self.writeJSONString(utf8: UnsafeRawBufferPointer($0), into: &out) }
    }

    /// ``writeJSONString(_:into:)`` for text given as its UTF-8 bytes.
    package static func writeJSONString(utf8 bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        out.writeStaticString("\"")
        var run = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if run < index { out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[run..<index])) }
            run = index + 1
            switch byte {
            case UInt8(ascii: "\""): out.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): out.writeStaticString("\\\\")
            case 0x0A: out.writeStaticString("\\n")
            case 0x0D: out.writeStaticString("\\r")
            case 0x09: out.writeStaticString("\\t")
            default:
                let hex: StaticString = "0123456789abcdef"
                let digits = hex.utf8Start
                out.writeStaticString("\\u00")
                out.writeInteger(digits[Int(byte >> 4)])
                out.writeInteger(digits[Int(byte & 0xF)])
            }
        }
        if run < bytes.count { out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[run...])) }
        out.writeStaticString("\"")
    }

    /// Writes the JSON string token `token` (quotes included, as ``ChunkScanner`` validated it) exactly
    /// as ``writeJSONString(_:into:)`` writes the text it decodes to. The fast path: when its only
    /// escapes are ones ``writeJSONString(_:into:)`` writes the same way (`\"`, `\\`, `\n`, `\r`,
    /// `\t`) — almost every token a runtime streams — the bytes are copied; otherwise (`\u`, `\/`,
    /// `\b`, `\f`) the text is decoded and written again. `JSONStringTokenTests` checks both paths
    /// give the same bytes. The token must be a validated string token: this does not check it.
    public static func writeJSONString(token: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        if Self.isCanonical(token) {
            out.writeBytes(token)
        } else {
            Self.writeJSONString(ChunkScanner.string(token, range: 0..<token.count), into: &out)
        }
    }

    /// Whether a validated string token's escapes are all ones ``writeJSONString(_:into:)`` writes
    /// the same way, so its bytes are what that writes for its text.
    package static func isCanonical(_ token: UnsafeRawBufferPointer) -> Bool {
        guard let base = token.baseAddress, token.count >= 2 else { return false }
        let end = token.count - 1  // the closing quote
        var offset = 1
        while offset < end, let hit = memchr(base + offset, Int32(UInt8(ascii: "\\")), end - offset) {
            let index = base.distance(to: UnsafeRawPointer(hit))
            guard index + 1 < end else { return false }
            switch token[index + 1] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                offset = index + 2
            default: return false
            }
        }
        return true
    }

    /// Whether `needle` occurs in `body`'s readable bytes (`SSE.search`: `memchr`, then `memcmp`).
    /// The safe definition, `readableBytesView.firstRange(of:)`, is generic and not specialized across
    /// modules: ~380 k instructions on a 100-byte request body (callgrind), as much as the rest of a
    /// `stream: false` request. `JSONBodyContainsTests` checks this against it.
    public static func contains(_ body: ByteBuffer, _ needle: StaticString) -> Bool {
        guard needle.utf8CodeUnitCount > 0 else { return true }
        return body.withUnsafeReadableBytes { bytes in needle.withUTF8Buffer { SSE.search($0, in: bytes) != nil } }
    }

    /// The raw value of member `name`, if present.
    /// What a JSON array of strings is: how many strings, and the first one's token (quotes included);
    /// nil when `value` is not an array of strings only.
    public static func stringArray(_ value: ByteBuffer) -> (count: Int, first: ByteBuffer?)? {
        value.withUnsafeReadableBytes { bytes -> (Int, ByteBuffer?)? in
            var reader = ChunkScanner.Reader(bytes: bytes)
            var count = 0
            var first: Range<Int>?
            do throws(ChunkScanner.Malformed) {
                reader.skipWhitespace()
                try reader.enterArray(depth: 1)
                while try reader.nextElement(&count) {
                    guard reader.peek() == UInt8(ascii: "\"") else { return nil }
                    let range = try reader.stringRange()
                    if first == nil { first = range }
                }
                reader.skipWhitespace()
                guard reader.atEnd else { return nil }
            } catch {
                return nil
            }
            return (count, first.map { value.getSlice(at: value.readerIndex + $0.lowerBound, length: $0.count)! })
        }
    }

    public static func rawValue(of name: String, in body: ByteBuffer, members: [Member]) -> ByteBuffer? {
        guard let member = members.last(where: { $0.name == name }) else { return nil }
        return body.getSlice(at: body.readerIndex + member.value.lowerBound, length: member.value.count)
    }

    /// The value of the top-level member `name`, decoded on its own; nil when the body has no such member.
    public static func value(of name: String, in body: ByteBuffer, members: [Member]) -> JSONValue? {
        guard let raw = Self.rawValue(of: name, in: body, members: members) else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: Data(raw.readableBytesView))
    }
}

extension String {
    fileprivate func trimmingSuffixWhitespace() -> String {
        var copy = self
        while let last = copy.last, last == " " || last == "\n" || last == "\r" || last == "\t" { copy.removeLast() }
        return copy
    }
}
