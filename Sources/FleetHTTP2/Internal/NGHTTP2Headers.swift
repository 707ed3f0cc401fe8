internal import CNGHTTP2
import HTTPTypes

/// Builds `nghttp2_nv` arrays from HTTP types. nghttp2 copies names and values on submit, so
/// the storage only has to live for the duration of the call.
enum NGHTTP2Headers {
    /// Connection-specific fields that HTTP/2 forbids (RFC 9113 §8.2.2).
    static let forbidden: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]

    static func withNV<R>(request: HTTPRequest, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        var pairs: [(String, String)] = [(":method", request.method.rawValue)]
        if let scheme = request.scheme { pairs.append((":scheme", scheme)) }
        if let authority = request.authority { pairs.append((":authority", authority)) }
        if let path = request.path { pairs.append((":path", path)) }
        return self.withNV(pairs: pairs, fields: request.headerFields, body)
    }

    static func withNV<R>(response: HTTPResponse, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        self.withNV(pairs: [(":status", String(response.status.code))], fields: response.headerFields, body)
    }

    static func withNV<R>(fields: HTTPFields, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        self.withNV(pairs: [], fields: fields, body)
    }

    private static func withNV<R>(
        pairs: [(String, String)],
        fields: HTTPFields,
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R {
        var all = pairs
        all.reserveCapacity(pairs.count + fields.count)
        for field in fields where !self.forbidden.contains(field.name.canonicalName) {
            all.append((field.name.canonicalName, field.value))
        }
        var storage: [UInt8] = []
        storage.reserveCapacity(all.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
        var offsets: [(Int, Int, Int, Int)] = []
        offsets.reserveCapacity(all.count)
        for (name, value) in all {
            let nameStart = storage.count
            storage.append(contentsOf: name.utf8)
            let valueStart = storage.count
            storage.append(contentsOf: value.utf8)
            offsets.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
        }
        return storage.withUnsafeMutableBufferPointer { bytes in
            let base = bytes.baseAddress ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!
            let nv = offsets.map { offset in
                nghttp2_nv(
                    name: base + offset.0, value: base + offset.2, namelen: offset.1, valuelen: offset.3,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            return nv.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}
