import FleetProtocol
import NIOCore

/// What the agent changes in a client's body before its runtime reads it, because a runtime the
/// fleet ships refuses what OpenAI takes.
///
/// - `"content": null` becomes `"content": ""`. OpenAI's SDKs send an assistant message that called
///   tools with content null (every second turn of a tool loop, and every Responses turn that carries
///   function calls), and llama-cpp-python 0.3 answers it with a 500 ("Input should be a valid
///   string"), which reached the app as a 502 (helper-71). An empty text is what null means there.
///
/// The change is made on the bytes, so every other field reaches the runtime as the client sent it.
/// A body without the bytes `null` is returned as it is (one `memmem`). Inside a JSON string a quote
/// is escaped, so `"content"` followed by `:` and `null` is always a member, never text.
enum RuntimeRequestCompatibility {
    /// `body` with every member `"content": null` (any whitespace around the colon) as `"content": ""`.
    static func emptyingNullContent(_ body: ByteBuffer) -> ByteBuffer {
        guard JSONBody.contains(body, "null") else { return body }
        return body.withUnsafeReadableBytes { bytes -> ByteBuffer in
            var out = ByteBuffer()
            var copied = 0
            var from = 0
            // Each `"content"` found with `SSE.search` (memchr, memcmp), then its colon and value.
            while let found = Self.key.withUnsafeBytes({
                SSE.search($0, in: UnsafeRawBufferPointer(rebasing: bytes[from...]))
            }) {
                var i = Self.skipWhitespace(bytes, from: from + found + Self.key.count)
                from = i
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { continue }
                i = Self.skipWhitespace(bytes, from: i + 1)
                from = i
                guard i + 4 <= bytes.count, zip(Self.null, bytes[i..<i + 4]).allSatisfy(==),
                    i + 4 == bytes.count || Self.isDelimiter(bytes[i + 4])
                else { continue }
                if copied == 0 { out.reserveCapacity(bytes.count) }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied..<i]))
                out.writeStaticString("\"\"")
                copied = i + 4
                from = copied
            }
            guard copied > 0 else { return body }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied...]))
            return out
        }
    }

    private static let key = Array("\"content\"".utf8)
    private static let null = Array("null".utf8)

    private static func skipWhitespace(_ bytes: UnsafeRawBufferPointer, from index: Int) -> Int {
        var i = index
        while i < bytes.count, Self.isSpace(bytes[i]) { i += 1 }
        return i
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 }

    private static func isDelimiter(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || Self.isSpace(byte)
    }
}
