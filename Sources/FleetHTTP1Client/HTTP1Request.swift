import HTTPTypes
package import NIOCore
import NIOHTTP1

/// A JSON `POST` ready for the wire: the request line, the headers and the body framed into one buffer,
/// so a request costs one write through the pipeline and no per-field encoding. NIO's
/// `HTTPRequestEncoder` turned a head, a body and an end into three writes and walked `HTTPHeaders`
/// field by field: ~29 k instructions of a central stream's ~390 k (issue #19, session 15).
///
/// A header whose name is not an HTTP token, or whose value is not a valid field value (a CR, LF, NUL
/// or other control byte; swift-http-types' RFC 9110 checks), is left out rather than sent: no field may
/// end a line early and smuggle another. So is one that would frame the
/// request or the connection a second time (`content-length`, `transfer-encoding`, `host`,
/// `connection` and the other hop-by-hop fields): this type writes those itself. The gateway's callers
/// pass values that nghttp2 or NIO's parser already refused to carry with such bytes (a client's
/// `tracestate`) or that it made itself.
package struct HTTP1Request {
    /// What NIO's response decoder is told of the request (``HTTP1RequestWriter``): its method, the
    /// one written below.
    static let decoderHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")

    /// Request line, headers, blank line and body.
    package let bytes: ByteBuffer
    /// Header fields left out (tests).
    package let omitted: Int

    /// `POST target HTTP/1.1` with `host`, `content-type: application/json`, `accept`, then `headers`
    /// in order and `content-length`, then `body`. `target`, `host` and `accept` are the caller's own,
    /// visible ASCII (and spaces in `accept`).
    package init(
        target: String, host: String, accept: String, headers: [(name: String, value: String)], body: ByteBuffer
    ) {
        // The caller's constants and the endpoint's URL (checked when it was read): checked in debug builds.
        assert(
            target.utf8.allSatisfy { (0x21...0x7E).contains($0) } && host.utf8.allSatisfy { (0x21...0x7E).contains($0) }
                && accept.utf8.allSatisfy { (0x20...0x7E).contains($0) },
            "HTTP1Request: a request line or fixed field that is not visible ASCII")
        let length = String(body.readableBytes)
        var size = Self.fixedBytes + target.utf8.count + host.utf8.count + accept.utf8.count + length.utf8.count
        for field in headers { size += field.name.utf8.count + field.value.utf8.count + 4 }
        var bytes = ByteBufferAllocator().buffer(capacity: size + body.readableBytes)
        var omitted = 0
        // One copy into the buffer's storage for the whole head (a `writeString` a piece cost ~250
        // instructions each, 26 of them); `HTTP1EndpointTests` reads it back with NIO's parser.
        bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            // The measured bytes only: a miscount traps in every test, not only when the body's room
            // and NIO's rounding happen to be short.
            var writer = Writer(out: UnsafeMutableRawBufferPointer(rebasing: out[..<size]))
            writer.put("POST ")
            writer.put(target)
            writer.put(" HTTP/1.1\r\nhost: ")
            writer.put(host)
            writer.put("\r\ncontent-type: application/json\r\naccept: ")
            writer.put(accept)
            writer.put("\r\n")
            for field in headers {
                guard writer.putField(field.name, field.value) else {
                    omitted += 1
                    continue
                }
            }
            writer.put("content-length: ")
            writer.put(length)
            writer.put("\r\n\r\n")
            return writer.at
        }
        bytes.writeImmutableBuffer(body)
        self.bytes = bytes
        self.omitted = omitted
    }

    /// The head's bytes besides the target, the host, `accept`'s value, the length and `headers`.
    private static let fixedBytes =
        "POST  HTTP/1.1\r\nhost: \r\ncontent-type: application/json\r\naccept: \r\ncontent-length: \r\n\r\n"
        .utf8.count

    /// Copies strings into the head's storage, which the caller sized for all of them.
    private struct Writer {
        let out: UnsafeMutableRawBufferPointer
        var at = 0

        mutating func put(_ string: String) {
            var string = string
            string.withUTF8 { self.put($0) }
        }

        private mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            precondition(self.at + bytes.count <= self.out.count, "HTTP1Request: head measured too small")
            UnsafeMutableRawBufferPointer(rebasing: self.out[self.at..<(self.at + bytes.count)]).copyMemory(
                from: UnsafeRawBufferPointer(bytes))
            self.at += bytes.count
        }

        /// `name: value\r\n`, or nothing (false) when the name is no token, the value no valid field
        /// value (swift-http-types' RFC 9110 checks: no CR, LF, NUL or other control byte), or the
        /// field one of ``framingFields``.
        mutating func putField(_ name: String, _ value: String) -> Bool {
            guard let field = HTTPField.Name(name), HTTPField.isValidValue(value),
                !HTTP1Request.framingFields.contains(field)
            else { return false }
            self.put(name)
            self.put(": ")
            self.put(value)
            self.put("\r\n")
            return true
        }
    }

    /// The fields this type writes itself or that speak for the connection, not the request (RFC 9110
    /// §7.6.1): a caller's copy would frame the message twice (a second `content-length`, a
    /// `transfer-encoding` beside it — the stuff of request smuggling) or contradict keep-alive. Names
    /// compare in any case.
    private static let framingFields: Set<HTTPField.Name> = [
        .contentLength, .transferEncoding, .connection, .te, .trailer, .upgrade, .expect,
        // Not swift-http-types' constants: `host` is HTTP/2's `:authority` there; these two are not registered.
        HTTPField.Name("host")!, HTTPField.Name("keep-alive")!, HTTPField.Name("proxy-connection")!,
    ]
}
