internal import CNGHTTP2
import HTTPTypes

/// Builds `nghttp2_nv` arrays from HTTP types.
///
/// nghttp2 copies names and values on submit, so the storage only has to live for the duration
/// of the call. One pass over the fields into a fixed scratch area (on the stack for a typical head); a head
/// that does not fit is laid out exactly in a second, measuring pass. Both paths produce the same
/// array (`HeaderConversionTests`).
enum NGHTTP2Headers {
    // Connection-specific fields that HTTP/2 forbids (RFC 9113 §8.2.2) are dropped: see isForbidden.

    /// A pseudo-header field: its name is a literal.
    typealias Pseudo = (name: StaticString, value: String)

    static func withNV<R>(request: HTTPRequest, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let pseudo = request.pseudoHeaderFields
        return self.withNV(
            (":method", request.method.rawValue),
            pseudo.scheme.map { (":scheme", $0.value) },
            pseudo.authority.map { (":authority", $0.value) },
            pseudo.path.map { (":path", $0.value) },
            fields: request.headerFields, body)
    }

    static func withNV<R>(response: HTTPResponse, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        // The status field's own text: `response.status` would parse it into a number first.
        let status = response.pseudoHeaderFields.status.value
        return self.withNV((":status", status), nil, nil, nil, fields: response.headerFields, body)
    }

    static func withNV<R>(fields: HTTPFields, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        self.withNV(nil, nil, nil, nil, fields: fields, body)
    }

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

    /// A field HPACK may add to the dynamic table (nghttp2 still decides: it never indexes
    /// `content-length`, `etag` and a few others).
    static let indexed = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
    /// A field kept out of the dynamic table, sent as a literal never indexed (RFC 7541 §6.2.3).
    static let neverIndexed = UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue)

    /// nghttp2's flag for a field's `indexingStrategy`: `.avoid` and `.disallow` keep it out of the
    /// dynamic table (nghttp2 has no literal "without indexing" of its own, so both are sent never
    /// indexed). A value that is the message's alone — a request id — should be: indexed, each one
    /// evicts fields that repeat, and every later field of its name is looked up through all the
    /// table's entries of that name (issue #19: ~50 request ids in a 4 KiB table made a refusal's
    /// head ~100 `memcmp`s).
    @inline(__always)
    static func flags(_ strategy: HTTPField.DynamicTableIndexingStrategy) -> UInt8 {
        strategy == .avoid || strategy == .disallow ? Self.neverIndexed : Self.indexed
    }

    /// Scratch sizes of the one-pass path: a head of up to this many bytes and fields (typical
    /// heads are a few hundred bytes) needs no measuring pass, and the scratch stays on the stack
    /// (`withUnsafeTemporaryAllocation` allocates up to 1 KiB there without asking).
    static var scratchBytes: Int { 1024 }
    static var scratchFields: Int { 16 }

    private static func withNV<R>(
        _ p0: Pseudo?, _ p1: Pseudo?, _ p2: Pseudo?, _ p3: Pseudo?,
        fields: HTTPFields,
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R {
        if let fitted = self.withScratchNV(p0, p1, p2, p3, fields: fields, body) { return fitted }
        return self.withExactNV(p0, p1, p2, p3, fields: fields, body)
    }

    /// The one-pass path: lays the head out into `bytes` of scratch and `count` entries.
    /// - Returns: `nil`, without calling `body`, when the head does not fit.
    static func withScratchNV<R>(
        _ p0: Pseudo?, _ p1: Pseudo?, _ p2: Pseudo?, _ p3: Pseudo?,
        fields: HTTPFields,
        bytes: Int = Self.scratchBytes, count: Int = Self.scratchFields,
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes) { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: count) { nv -> R? in
                var writer = Writer(storage: storage, nv: nv)
                guard writer.add(p0, p1, p2, p3, fields: fields) else { return nil }
                return body(UnsafePointer(nv.baseAddress!), writer.count)
            }
        }
    }

    /// `name: value` for each entry, in order: what nghttp2 is handed, for tests and debugging.
    static func lines(_ nv: UnsafePointer<nghttp2_nv>, _ count: Int) -> [String] {
        (0..<count).map { i in
            let name = UnsafeBufferPointer(start: nv[i].name, count: nv[i].namelen)
            let value = UnsafeBufferPointer(start: nv[i].value, count: nv[i].valuelen)
            return String(decoding: name, as: UTF8.self) + ": " + String(decoding: value, as: UTF8.self)
        }
    }

    /// The general path: measure, then lay out into storage of exactly that size.
    static func withExactNV<R>(
        _ p0: Pseudo?, _ p1: Pseudo?, _ p2: Pseudo?, _ p3: Pseudo?,
        fields: HTTPFields,
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R {
        var bytes = 0
        var count = 0
        for pseudo in [p0, p1, p2, p3] {
            guard let pseudo else { continue }
            bytes += pseudo.name.utf8CodeUnitCount + pseudo.value.utf8.count
            count += 1
        }
        for field in fields where !self.isForbidden(field.name.canonicalName) {
            bytes += field.name.canonicalName.utf8.count + field.value.utf8.count
            count += 1
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(bytes, 1)) { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(count, 1)) { nv in
                var writer = Writer(storage: storage, nv: nv)
                let added = writer.add(p0, p1, p2, p3, fields: fields)
                precondition(added, "nghttp2_nv storage measured too small")
                return body(UnsafePointer(nv.baseAddress!), writer.count)
            }
        }
    }

    /// Copies names and values into `storage` and points `nv` entries at them.
    struct Writer {
        let storage: UnsafeMutableBufferPointer<UInt8>
        let nv: UnsafeMutableBufferPointer<nghttp2_nv>
        var used = 0
        var count = 0

        /// - Returns: false when the storage or the `nv` array is too small.
        mutating func add(_ p0: Pseudo?, _ p1: Pseudo?, _ p2: Pseudo?, _ p3: Pseudo?, fields: HTTPFields) -> Bool {
            if let p0, !self.add(name: p0.name, value: p0.value) { return false }
            if let p1, !self.add(name: p1.name, value: p1.value) { return false }
            if let p2, !self.add(name: p2.name, value: p2.value) { return false }
            if let p3, !self.add(name: p3.name, value: p3.value) { return false }
            for field in fields {
                let name = field.name.canonicalName
                if NGHTTP2Headers.isForbidden(name) { continue }
                let flags = NGHTTP2Headers.flags(field.indexingStrategy)
                guard self.add(name: name.utf8, value: field.value.utf8, flags: flags) else { return false }
            }
            return true
        }

        @inline(__always)
        private mutating func add(name: StaticString, value: String) -> Bool {
            name.withUTF8Buffer { self.add(name: $0, value: value.utf8) }
        }

        private mutating func add(
            name: some Collection<UInt8>, value: some Collection<UInt8>, flags: UInt8 = NGHTTP2Headers.indexed
        ) -> Bool {
            let nameCount = name.count
            let valueCount = value.count
            guard self.count < self.nv.count, nameCount + valueCount <= self.storage.count - self.used else {
                return false
            }
            let base = self.storage.baseAddress!
            let nameStart = self.used
            _ = UnsafeMutableBufferPointer(start: base + nameStart, count: nameCount).initialize(fromContentsOf: name)
            let valueStart = nameStart + nameCount
            _ = UnsafeMutableBufferPointer(start: base + valueStart, count: valueCount).initialize(
                fromContentsOf: value)
            self.used = valueStart + valueCount
            self.nv[self.count] = nghttp2_nv(
                name: base + nameStart, value: base + valueStart, namelen: nameCount, valuelen: valueCount,
                flags: flags)
            self.count += 1
            return true
        }
    }
}
