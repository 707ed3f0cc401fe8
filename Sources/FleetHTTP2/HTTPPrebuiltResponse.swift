internal import CNGHTTP2
public import NIOCore

/// A complete response made once and sent many times: the answer of
/// ``HTTPServerResponder/earlyResponse(method:path:eventLoop:)`` (issue #19), which must cost a
/// loop past capacity as little as possible. Its head is kept as nghttp2's own field array, so
/// sending it converts nothing; its body is one buffer, shared by every stream it answers.
///
/// Immutable after `init`, so it may be shared between event loops.
public final class HTTPPrebuiltResponse: @unchecked Sendable {
    /// The body, sent as the stream's DATA.
    let body: ByteBuffer
    /// `:status` and the fields, with `content-length` (nghttp2 copies them on submit).
    let fields: UnsafeMutableBufferPointer<nghttp2_nv>
    /// The bytes every name and value of `fields` points into.
    private let storage: UnsafeMutableRawBufferPointer
    /// A request field the response repeats (a request id), if any: see ``Echo``.
    let echo: Echo?

    /// A request field the response carries back: the request's value when `accepts` it, else one
    /// `generate` makes (`x-request-id`: echoed, or generated — DESIGN.md's Contracts). Its value
    /// being the request's own, HPACK sends it never indexed.
    public struct Echo: Sendable {
        /// The field's name, lowercase.
        public let name: String
        let nameBytes: [UInt8]
        /// Whether the request's value may be repeated as it is.
        public var accepts: @Sendable (UnsafeBufferPointer<UInt8>) -> Bool
        /// A value for a request without an acceptable one.
        public var generate: @Sendable () -> String

        public init(
            name: String, accepts: @escaping @Sendable (UnsafeBufferPointer<UInt8>) -> Bool,
            generate: @escaping @Sendable () -> String
        ) {
            self.name = name
            self.nameBytes = Array(name.lowercased().utf8)
            self.accepts = accepts
            self.generate = generate
        }
    }

    /// - Parameters:
    ///   - status: the status code.
    ///   - fields: the response fields (names are sent lowercase, as HTTP/2 requires); `content-length` is added.
    ///   - body: the body.
    ///   - echo: a request field to repeat in the response (after the fields above).
    public init(status: Int, fields: [(name: String, value: String)], body: ByteBuffer, echo: Echo? = nil) {
        self.echo = echo
        var all: [(name: [UInt8], value: [UInt8])] = [(Array(":status".utf8), Array(String(status).utf8))]
        for field in fields {
            all.append((Array(field.name.lowercased().utf8), Array(field.value.utf8)))  // HTTP/2: lowercase
        }
        all.append((Array("content-length".utf8), Array(String(body.readableBytes).utf8)))
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: all.reduce(0) { $0 + $1.name.count + $1.value.count }, alignment: 1)
        let nv = UnsafeMutableBufferPointer<nghttp2_nv>.allocate(capacity: all.count)
        var offset = 0
        for (index, field) in all.enumerated() {
            var pointers: [UnsafeMutablePointer<UInt8>] = []
            for bytes in [field.name, field.value] {
                UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + bytes.count)]).copyBytes(from: bytes)
                pointers.append(storage.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self))
                offset += bytes.count
            }
            nv[index] = nghttp2_nv(
                name: pointers[0], value: pointers[1], namelen: field.name.count, valuelen: field.value.count,
                flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        self.body = body
        self.storage = storage
        self.fields = nv
    }

    deinit {
        self.fields.deallocate()
        self.storage.deallocate()
    }
}
