import FleetProtocol
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the relay writes what the client sees: the stream's identity, chunks (the upstream's own
/// bytes when they already carry it, else written anew), and reading an event's `data:` payload.
extension SSERelay {

    /// The stream's identity from its first chunk (`item`; nil before any): each field the chunk
    /// lacks from the request's (``Configuration/fallbackID``, `fallbackModel`, `fallbackCreated`).
    func makeIdentity(from item: Item?) -> Identity {
        // The defaults are built only when the chunk lacks the field (three allocations otherwise).
        func slice(_ range: Range<Int>?) -> ByteBuffer? {
            guard let range, let payload = item?.payload else { return nil }
            return payload.getSlice(at: payload.readerIndex + range.lowerBound, length: range.count)
        }
        let chunk = item?.chunk
        return Identity(
            id: slice(chunk?.idRange) ?? ByteBuffer(string: "\"" + self.configuration.fallbackID + "\""),
            object: slice(chunk?.objectRange)
                ?? ByteBuffer(string: self.configuration.chat ? "\"chat.completion.chunk\"" : "\"text_completion\""),
            created: chunk?.created ?? self.configuration.fallbackCreated,
            model: slice(chunk?.modelRange) ?? Self.jsonString(self.configuration.fallbackModel))
    }

    /// Writes one event to the client: the upstream's payload when it already carries the stream's
    /// id and no usage, else the stream's identity followed by the payload's other top-level
    /// members as they are — with `usage` left out, or, for the closing usage chunk, replaced by
    /// `usage`: the counts the gateway bounded (``SSERelay/usage``).
    ///
    /// Every member but the identity's is copied, never rebuilt from what ``ChunkScanner`` reads: a
    /// chunk written anew from its role, text and finish reason lost its tool calls, logprobs and any
    /// field the relay does not read (`reasoning_content`), whenever its id differed from the stream's
    /// or it carried usage (an attack on the relay, session 18). An upstream's `usage` never passes
    /// unread (helper-76: counts the scanner does not read, `1e6` or `"1000000"`, `total_tokens`, the
    /// details, and usage on a text chunk reached the client past the bounds).
    func write(_ item: Item, into out: inout ByteBuffer, usage: Usage? = nil) {
        guard let chunk = item.chunk, self.identity != nil else { return }
        let sameID = chunk.idRange.map { self.isStreamID($0, of: item.payload) } ?? false
        let rewriteUsage = chunk.carriesUsage || usage != nil
        guard !sameID || rewriteUsage, let members = JSONBody.members(of: item.payload) else {
            Self.writeEvent(item.payload, into: &out)
            return
        }
        var json = ByteBuffer()
        json.reserveCapacity(item.payload.readableBytes + 128)
        self.writeEnvelopeStart(into: &json)
        var first = true
        item.payload.withUnsafeReadableBytes { bytes in
            for member in members {
                switch member.name {
                case "id", "object", "created", "model": continue
                case "usage":
                    guard let usage else { continue }
                    if !first { json.writeStaticString(",") }
                    first = false
                    json.writeStaticString("\"usage\":")
                    usage.writeJSONObject(into: &json)
                    continue
                default: break
                }
                if !first { json.writeStaticString(",") }
                first = false
                json.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[member.range]))
            }
        }
        if first { json.moveWriterIndex(to: json.writerIndex - 1) }  // the envelope's trailing comma
        json.writeStaticString("}")
        Self.writeEvent(json, into: &out)
    }

    /// Whether the string token at `range` of `payload`'s readable bytes is the stream's id
    /// (``Identity/isID(_:in:)``).
    func isStreamID(_ range: Range<Int>, of payload: ByteBuffer) -> Bool {
        guard let identity = self.identity else { return false }
        return payload.withUnsafeReadableBytes { identity.isID(range, in: $0) }
    }

    /// `{"id":…,"object":…,"created":…,"model":…,` — the caller writes the rest.
    func writeEnvelopeStart(into json: inout ByteBuffer) {
        let identity = self.identity ?? self.makeIdentity(from: nil)
        json.writeStaticString("{\"id\":")
        json.writeImmutableBuffer(identity.id)
        json.writeStaticString(",\"object\":")
        json.writeImmutableBuffer(identity.object)
        json.writeStaticString(",\"created\":")
        json.writeString(String(identity.created))
        json.writeStaticString(",\"model\":")
        json.writeImmutableBuffer(identity.model)
        json.writeStaticString(",")
    }

    /// `data: PAYLOAD` and the blank line. A payload that came in several `data:` lines (JSON
    /// whitespace may hold newlines) goes out in as many `data:` lines, never with a raw newline
    /// inside one (the SSE fuzzer's finding: the client saw a broken event).
    static func writeEvent(_ payload: ByteBuffer, into out: inout ByteBuffer) {
        // The usual one-line payload: one reservation and three copies (`writeConcatenation`). Three
        // `ByteBuffer` writes cost ~1.2 k instructions an event, as much as the relay's own work on it.
        let written = payload.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, memchr(base, Int32(UInt8(ascii: "\n")), bytes.count) == nil,
                memchr(base, Int32(UInt8(ascii: "\r")), bytes.count) == nil
            else {
                return false
            }
            out.writeConcatenation(Self.dataPrefix, bytes, Self.eventEnd)
            return true
        }
        if written { return }
        out.reserveCapacity(minimumWritableBytes: payload.readableBytes + 16)
        out.writeStaticString("data: ")
        for byte in payload.readableBytesView {
            // A CR is a line end to an SSE client too (EventSource, the openai SDK): in a payload it can
            // only be JSON whitespace (the scanner checked), so it becomes a line break like a LF.
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                out.writeStaticString("\ndata: ")
            } else {
                out.writeInteger(byte)
            }
        }
        out.writeStaticString("\n\n")
    }

    /// `data: `, for ``writeEvent(_:into:)``.
    private static var dataPrefix: UnsafeRawBufferPointer {
        let text: StaticString = "data: "
        return UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// The end of an event's last line and the blank line, for ``writeEvent(_:into:)``.
    private static var eventEnd: UnsafeRawBufferPointer {
        let text: StaticString = "\n\n"
        return UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// `text` as a JSON string token.
    static func jsonString(_ text: String) -> ByteBuffer {
        var out = ByteBuffer()
        JSONBody.writeJSONString(text, into: &out)
        return out
    }

    static func writeJSONString(_ text: String, into out: inout ByteBuffer) {
        JSONBody.writeJSONString(text, into: &out)
    }

    /// Writes the string token at `range` of `payload` (validated by ``ChunkScanner``) as
    /// ``writeJSONString(_:into:)`` writes its text: copied as it is, unless its escapes are not the
    /// ones that writes (``JSONBody/writeJSONString(token:into:)``).
    static func writeJSONString(token range: Range<Int>, of payload: ByteBuffer, into out: inout ByteBuffer) {
        payload.withUnsafeReadableBytes { bytes in
            JSONBody.writeJSONString(token: UnsafeRawBufferPointer(rebasing: bytes[range]), into: &out)
        }
    }

    static func decodeString(_ token: ByteBuffer) -> String {
        token.withUnsafeReadableBytes { ChunkScanner.string($0, range: 0..<$0.count) }
    }
}
