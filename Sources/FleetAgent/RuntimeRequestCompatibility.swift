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
            let key = Array("\"content\"".utf8)
            var out = ByteBuffer()
            out.reserveCapacity(bytes.count)
            var copied = 0
            var i = 0
            while i + key.count <= bytes.count {
                guard Self.matches(key, in: bytes, at: i) else {
                    i += 1
                    continue
                }
                var j = Self.skipWhitespace(bytes, from: i + key.count)
                guard j < bytes.count, bytes[j] == UInt8(ascii: ":") else {
                    i += key.count
                    continue
                }
                j = Self.skipWhitespace(bytes, from: j + 1)
                if Self.matches(Array("null".utf8), in: bytes, at: j),
                    j + 4 == bytes.count || Self.isDelimiter(bytes[j + 4])
                {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied..<j]))
                    out.writeStaticString("\"\"")
                    copied = j + 4
                }
                i = j
            }
            guard copied > 0 else { return body }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied...]))
            return out
        }
    }

    private static func matches(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        guard index + needle.count <= bytes.count else { return false }
        for k in needle.indices where bytes[index + k] != needle[k] { return false }
        return true
    }

    private static func skipWhitespace(_ bytes: UnsafeRawBufferPointer, from index: Int) -> Int {
        var i = index
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        return i
    }

    private static func isDelimiter(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == 0x20 || byte == 0x0A || byte == 0x0D
            || byte == 0x09
    }
}
