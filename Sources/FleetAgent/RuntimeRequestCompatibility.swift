import FleetProtocol
import NIOCore

/// What the agent changes in a client's body before its runtime reads it, because a runtime the
/// fleet ships refuses what OpenAI takes.
///
/// - `"content": null` becomes `"content": ""`. OpenAI's SDKs send an assistant message that called
///   tools with content null (every second turn of a tool loop, and every Responses turn that carries
///   function calls), and llama-cpp-python 0.3 answers it with a 500 ("Input should be a valid
///   string"), which reached the app as a 502 (helper-71). An empty text is what null means there.
/// - A message's `"role": "developer"` becomes `"role": "system"`. OpenAI takes a developer message
///   where its older models took a system one, and its docs steer apps to it; llama-cpp-python 0.3
///   answers it with a 500 that reached the app as a 502, retried by the SDK (helper-100). The Responses
///   API's mapping already sent it as a system message.
///
/// The change is made on the bytes, so every other field reaches the runtime as the client sent it.
/// A body without the bytes `null` (or `developer"`) is returned as it is (one `memmem`). Inside a JSON
/// string a quote is escaped, so a quoted key followed by `:` is always a member, never text; roles are
/// looked for in `messages` only, so a `role` elsewhere (a tool's schema, `metadata`) is left alone.
enum RuntimeRequestCompatibility {
    /// `body` with every member `"content": null` (any whitespace around the colon) as `"content": ""`.
    static func emptyingNullContent(_ body: ByteBuffer) -> ByteBuffer {
        guard JSONBody.contains(body, "null") else { return body }
        return Self.replacing(Self.content, Self.null, with: "\"\"", in: body, within: nil)
    }

    /// `body` with every message's `"role": "developer"` as `"role": "system"`.
    static func systemForDeveloper(_ body: ByteBuffer) -> ByteBuffer {
        guard JSONBody.contains(body, "developer\""), let members = JSONBody.members(of: body),
            let messages = members.last(where: { $0.name == "messages" })
        else { return body }
        return Self.replacing(Self.role, Self.developer, with: "\"system\"", in: body, within: messages.value)
    }

    /// `body` with each member `key` (quotes included) whose value is the token `value` given
    /// `replacement` instead, looking only `within` a range of the readable bytes when one is given.
    private static func replacing(
        _ key: [UInt8], _ value: [UInt8], with replacement: StaticString, in body: ByteBuffer, within: Range<Int>?
    ) -> ByteBuffer {
        body.withUnsafeReadableBytes { bytes -> ByteBuffer in
            let range = within ?? 0..<bytes.count
            var out = ByteBuffer()
            var copied = 0
            var from = range.lowerBound
            // Each key found with `SSE.search` (memchr, memcmp), then its colon and value.
            while from < range.upperBound,
                let found = key.withUnsafeBytes({
                    SSE.search($0, in: UnsafeRawBufferPointer(rebasing: bytes[from..<range.upperBound]))
                })
            {
                var i = Self.skipWhitespace(bytes, from: from + found + key.count)
                from = i
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { continue }
                i = Self.skipWhitespace(bytes, from: i + 1)
                from = i
                let end = i + value.count
                guard end <= bytes.count, zip(value, bytes[i..<end]).allSatisfy(==),
                    end == bytes.count || Self.isDelimiter(bytes[end])
                else { continue }
                if copied == 0 { out.reserveCapacity(bytes.count) }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied..<i]))
                out.writeStaticString(replacement)
                copied = end
                from = copied
            }
            guard copied > 0 else { return body }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[copied...]))
            return out
        }
    }

    private static let content = Array("\"content\"".utf8)
    private static let null = Array("null".utf8)
    private static let role = Array("\"role\"".utf8)
    private static let developer = Array("\"developer\"".utf8)

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
