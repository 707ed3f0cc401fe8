public import NIOCore

extension JSONBody {
    /// The first member name that repeats an earlier one's in the same object, at any depth of
    /// `body` (names compared unescaped), or nil — also when `body` is not JSON (the decoder judges
    /// that).
    ///
    /// Parsers disagree on which of two duplicates wins (Foundation keeps the first, Python's json
    /// the last), so a gateway that checks one — a message's role, a content part's type — and
    /// forwards the bytes would let the upstream act on the other (helper-58:
    /// `{"role":"user","content":"hi","role":"wizard"}` reached central as role `wizard`). The fast
    /// request reader refuses duplicates itself; this covers the bodies that go to the decoder.
    public static func firstNestedDuplicate(in body: ByteBuffer) -> String? {
        body.withUnsafeReadableBytes { Self.firstNestedDuplicate(in: $0) }
    }

    /// ``firstNestedDuplicate(in:)-(ByteBuffer)`` of bytes in memory the caller holds (a status line).
    public static func firstNestedDuplicate(in bytes: UnsafeRawBufferPointer) -> String? {
        var reader = ChunkScanner.Reader(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.position = 3 }
        do throws(ChunkScanner.Malformed) {
            return try Self.duplicate(in: &reader, depth: 1)
        } catch {
            return nil
        }
    }

    private static func duplicate(in reader: inout ChunkScanner.Reader, depth: Int) throws(ChunkScanner.Malformed)
        -> String?
    {
        guard depth <= ChunkScanner.maxDepth else { throw reader.fail() }
        reader.skipWhitespace()
        switch reader.peek() {
        case UInt8(ascii: "{"):
            reader.position += 1
            var names: [String] = []  // a few members: compared in turn; past 16, a set
            var many = Set<String>()
            reader.skipWhitespace()
            if reader.peek() == UInt8(ascii: "}") {
                reader.position += 1
                return nil
            }
            while true {
                reader.skipWhitespace()
                let name = try reader.string()
                if names.count < 16 {
                    if names.contains(name) { return name }
                    names.append(name)
                } else {
                    if many.isEmpty { many = Set(names) }
                    if !many.insert(name).inserted { return name }
                }
                try reader.expect(UInt8(ascii: ":"))
                if let found = try Self.duplicate(in: &reader, depth: depth + 1) { return found }
                reader.skipWhitespace()
                guard let next = reader.peek() else { throw reader.fail() }
                reader.position += 1
                if next == UInt8(ascii: "}") { return nil }
                guard next == UInt8(ascii: ",") else { throw reader.fail() }
            }
        case UInt8(ascii: "["):
            try reader.enterArray(depth: depth)
            var elements = 0
            while try reader.nextElement(&elements) {
                if let found = try Self.duplicate(in: &reader, depth: depth + 1) { return found }
            }
            return nil
        default:
            try reader.skipValue(depth: depth)
            return nil
        }
    }
}
