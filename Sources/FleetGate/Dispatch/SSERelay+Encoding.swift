import FleetProtocol
import NIOCore

/// How the relay writes what the client sees: the stream's identity, chunks (the upstream's own
/// bytes when they already carry it, else written anew), and reading an event's `data:` payload.
extension SSERelay {

    func makeIdentity(from item: Item) -> Identity {
        var id = ByteBuffer(string: "\"" + self.configuration.fallbackID + "\"")
        var object = ByteBuffer(string: self.configuration.chat ? "\"chat.completion.chunk\"" : "\"text_completion\"")
        var model = ByteBuffer(string: "\"\"")
        if let chunk = item.chunk {
            if let range = chunk.idRange { id = item.payload.getSlice(at: item.payload.readerIndex + range.lowerBound, length: range.count)! }
            if let range = chunk.objectRange { object = item.payload.getSlice(at: item.payload.readerIndex + range.lowerBound, length: range.count)! }
            if let range = chunk.modelRange { model = item.payload.getSlice(at: item.payload.readerIndex + range.lowerBound, length: range.count)! }
        }
        return Identity(id: id, object: object, created: item.chunk?.created ?? 0, model: model)
    }

    /// Writes one event to the client: the upstream's payload when it already carries the stream's
    /// id and no usage to strip, else the chunk written anew.
    func write(_ item: Item, into out: inout ByteBuffer) {
        guard let chunk = item.chunk, let identity = self.identity else { return }
        // ByteBuffer's `==` is one memcmp; a generic walk of two views was 0.6 % of the relay's CPU.
        let sameID = chunk.idRange.map { range in
            item.payload.getSlice(at: item.payload.readerIndex + range.lowerBound, length: range.count) == identity.id
        } ?? false
        if sameID && (self.configuration.includeUsage || !chunk.hasUsage) {
            Self.writeEvent(item.payload, into: &out)
            return
        }
        var json = ByteBuffer()
        self.writeEnvelopeStart(into: &json)
        json.writeStaticString("\"choices\":[")
        var first = true
        for choice in [chunk.choice].compactMap({ $0 }) + chunk.otherChoices {
            if !first { json.writeStaticString(",") }
            first = false
            json.writeStaticString("{\"index\":")
            json.writeString(String(choice.index))
            if self.configuration.chat {
                json.writeStaticString(",\"delta\":{")
                var needsComma = false
                if choice.hasRole {
                    json.writeStaticString("\"role\":\"assistant\"")
                    needsComma = true
                }
                if let token = choice.contentToken {
                    if needsComma { json.writeStaticString(",") }
                    json.writeStaticString("\"content\":")
                    Self.writeJSONString(token: token, of: item.payload, into: &json)
                }
                json.writeStaticString("}")
            } else {
                json.writeStaticString(",\"text\":")
                if let token = choice.contentToken {
                    Self.writeJSONString(token: token, of: item.payload, into: &json)
                } else {
                    json.writeStaticString("\"\"")
                }
            }
            json.writeStaticString(",\"finish_reason\":")
            if let reason = choice.finishReason {
                Self.writeJSONString(reason, into: &json)
            } else {
                json.writeStaticString("null")
            }
            json.writeStaticString("}")
        }
        json.writeStaticString("]}")
        Self.writeEvent(json, into: &out)
    }

    /// `{"id":…,"object":…,"created":…,"model":…,` — the caller writes the rest.
    func writeEnvelopeStart(into json: inout ByteBuffer) {
        let identity =
            self.identity
            ?? Identity(
                id: ByteBuffer(string: "\"" + self.configuration.fallbackID + "\""),
                object: ByteBuffer(string: self.configuration.chat ? "\"chat.completion.chunk\"" : "\"text_completion\""),
                created: 0, model: ByteBuffer(string: "\"\""))
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
        // One allocation of the right size: growing an empty buffer write by write reallocated twice.
        out.reserveCapacity(minimumWritableBytes: payload.readableBytes + 8)
        out.writeStaticString("data: ")
        if payload.offsetOfFirst(UInt8(ascii: "\n")) != nil {
            for byte in payload.readableBytesView {
                if byte == UInt8(ascii: "\n") {
                    out.writeStaticString("\ndata: ")
                } else {
                    out.writeInteger(byte)
                }
            }
        } else {
            out.writeImmutableBuffer(payload)
        }
        out.writeStaticString("\n\n")
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
