internal import CNGHTTP2
import HTTPTypes

/// Builds `nghttp2_nv` arrays from HTTP types. nghttp2 copies names and values on submit, so
/// the storage only has to live for the duration of the call.
enum NGHTTP2Headers {
    // Connection-specific fields that HTTP/2 forbids (RFC 9113 §8.2.2) are dropped: see isForbidden.

    static func withNV<R>(request: HTTPRequest, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        var pairs: [(String, String)] = [(":method", request.method.rawValue)]
        if let scheme = request.scheme { pairs.append((":scheme", scheme)) }
        if let authority = request.authority { pairs.append((":authority", authority)) }
        if let path = request.path { pairs.append((":path", path)) }
        return self.withNV(pairs: pairs, fields: request.headerFields, body)
    }

    static func withNV<R>(response: HTTPResponse, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let code = response.status.code
        let status = code < 600 ? self.statusText[code] : String(code)
        return self.withNV(pairs: [(":status", status)], fields: response.headerFields, body)
    }

    static func withNV<R>(fields: HTTPFields, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        self.withNV(pairs: [], fields: fields, body)
    }

    /// Status codes as text, built once.
    static let statusText: [String] = (0..<600).map { String($0) }

    @inline(__always)
    static func isForbidden(_ name: String) -> Bool {
        switch name.utf8.count {
        case 7: return name == "upgrade"
        case 10: return name == "connection" || name == "keep-alive"
        case 16: return name == "proxy-connection"
        case 17: return name == "transfer-encoding"
        default: return false
        }
    }

    /// Lays names and values out in one temporary buffer and points an `nghttp2_nv` array into it.
    private static func withNV<R>(
        pairs: [(String, String)],
        fields: HTTPFields,
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R {
        var bytes = 0
        var count = pairs.count
        for (name, value) in pairs { bytes += name.utf8.count + value.utf8.count }
        for field in fields where !self.isForbidden(field.name.canonicalName) {
            bytes += field.name.canonicalName.utf8.count + field.value.utf8.count
            count += 1
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(bytes, 1)) { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(count, 1)) { nv in
                var offset = 0
                var index = 0
                func add(_ name: String, _ value: String) {
                    let base = storage.baseAddress!
                    let nameStart = offset
                    offset += UnsafeMutableBufferPointer(rebasing: storage[offset...]).initialize(
                        fromContentsOf: name.utf8)
                    let valueStart = offset
                    offset += UnsafeMutableBufferPointer(rebasing: storage[offset...]).initialize(
                        fromContentsOf: value.utf8)
                    nv[index] = nghttp2_nv(
                        name: base + nameStart, value: base + valueStart, namelen: valueStart - nameStart,
                        valuelen: offset - valueStart, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                    index += 1
                }
                for (name, value) in pairs { add(name, value) }
                for field in fields where !self.isForbidden(field.name.canonicalName) {
                    add(field.name.canonicalName, field.value)
                }
                return body(UnsafePointer(nv.baseAddress!), index)
            }
        }
    }
}
