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
    /// The echoed field's name, lowercase (empty without one): compared with each request field's
    /// and pointed at by the response's field, with no copy of ``Echo`` (its closures) or of the name.
    /// In `storage`, after the fields' bytes.
    let echoName: UnsafeBufferPointer<UInt8>

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
        let name = echo?.nameBytes ?? []
        var all: [(name: [UInt8], value: [UInt8])] = [(Array(":status".utf8), Array(String(status).utf8))]
        for field in fields {
            all.append((Array(field.name.lowercased().utf8), Array(field.value.utf8)))  // HTTP/2: lowercase
        }
        all.append((Array("content-length".utf8), Array(String(body.readableBytes).utf8)))
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: all.reduce(name.count) { $0 + $1.name.count + $1.value.count }, alignment: 1)
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
        UnsafeMutableRawBufferPointer(rebasing: storage[offset...]).copyBytes(from: name)
        self.echoName = UnsafeBufferPointer(
            start: storage.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self), count: name.count)
        self.body = body
        self.storage = storage
        self.fields = nv
    }

    /// Whether `name` is the echoed field's.
    @inline(__always)
    func echoes(name: UnsafeBufferPointer<UInt8>) -> Bool {
        !self.echoName.isEmpty && name.count == self.echoName.count && name.elementsEqual(self.echoName)
    }

    /// Calls `body` with the response's fields: the prebuilt ones, then the echoed field — the
    /// request's value (`requestValue`) when ``Echo/accepts`` it, else a generated one — never indexed
    /// by HPACK, its value being the request's own. The array is laid out on the stack; nghttp2
    /// copies names and values on submit.
    func withFields<R>(echoing requestValue: [UInt8]?, _ body: (UnsafeBufferPointer<nghttp2_nv>) -> R) -> R {
        guard let echo = self.echo else { return body(UnsafeBufferPointer(self.fields)) }
        return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: self.fields.count + 1) { nv in
            _ = nv.initialize(fromContentsOf: self.fields)
            let name = self.echoName
            func submit(_ value: UnsafeBufferPointer<UInt8>) -> R {
                nv[self.fields.count] = nghttp2_nv(
                    name: UnsafeMutablePointer(mutating: name.baseAddress),
                    value: UnsafeMutablePointer(mutating: value.baseAddress ?? name.baseAddress),
                    namelen: name.count, valuelen: value.count, flags: NGHTTP2Headers.neverIndexed)
                return body(UnsafeBufferPointer(nv))
            }
            if let requestValue, requestValue.withUnsafeBufferPointer(echo.accepts) {
                return requestValue.withUnsafeBufferPointer(submit)
            }
            var generated = echo.generate()
            return generated.withUTF8(submit)
        }
    }

    deinit {
        self.fields.deallocate()
        self.storage.deallocate()
    }
}
