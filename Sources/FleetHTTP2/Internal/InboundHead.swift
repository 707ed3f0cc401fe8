import HTTPTypes

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The header block a connection is receiving, and the previous head, whose values it reuses.
///
/// HTTP/2 never interleaves header blocks on a connection (RFC 9113 §4.3), so one of these per
/// connection serves every stream in turn. Clients repeat method, scheme, authority, path and most
/// fields request after request (HPACK sends them as table references): a pseudo-header or a field
/// whose bytes equal the previous head's at the same place reuses that value instead of building
/// and validating a new one, a field list equal to the previous one is the previous `HTTPFields`
/// (no allocation), and a request whose pseudo-header fields all equal the previous request's reuses
/// its `HTTPRequest` (its pseudo-header storage is shared, not rebuilt and revalidated). Reuse
/// needs byte equality, so the values are the ones building them anew gives (`InboundHeadTests`).
///
/// A class, held in a `let` by the connection, whose properties are only ever read or assigned,
/// never modified across a call (the one append goes through `swap`): the optimizer then removes
/// their run-time exclusivity checks, which would otherwise cost ~80 instructions a field.
final class InboundHead {
    /// The pseudo-header fields of the block so far.
    private(set) var pseudo = PseudoHeaders()
    /// Bytes counted against SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2).
    var listBytes = 0
    /// Set once the block went over SETTINGS_MAX_HEADER_LIST_SIZE.
    var tooLarge = false
    /// What the block's fields feed: set as it begins, so that a field costs no stream lookup.
    var purpose = HeaderBlockPurpose.collected
    /// The stream the block is on.
    private(set) var streamID: Int32 = 0

    /// The regular fields of the block, once it diverged from the previous head's.
    private var fields = HTTPFields()
    /// How many leading fields equal the previous head's (and are not copied into `fields`).
    private var matched = 0
    private var diverged = false

    private var previousFields = HTTPFields()
    /// The previous head's fields as bytes, to compare without copying an `HTTPField` (~150
    /// instructions each): names and values back to back, and where each ends (two per field).
    private var previousBytes: [UInt8] = []
    private var previousEnds: [Int] = []
    private var previousPseudo = PseudoHeaders()
    private var previousRequest: HTTPRequest?

    /// A new header block begins on `streamID`, for `purpose`.
    @inline(__always)
    func begin(_ purpose: HeaderBlockPurpose, streamID: Int32) {
        self.purpose = purpose
        self.streamID = streamID
        self.pseudo = PseudoHeaders()
        self.listBytes = 0
        self.tooLarge = false
        self.matched = 0
        self.diverged = false
        if !self.fields.isEmpty { self.fields = HTTPFields() }
    }

    /// Adds one field, which nghttp2 has validated (RFC 9113 §8.2.1, §8.3): pseudo-header fields
    /// are told apart by length and a letter, others are appended.
    @inline(__always)
    func append(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        if name.count > 1 && name[0] == UInt8(ascii: ":") {
            switch (name.count, name[1]) {
            case (7, UInt8(ascii: "m")):
                self.pseudo.method = Self.reuse(self.previousPseudo.method, value) ?? InboundField.pseudoValue(value)
            case (7, UInt8(ascii: "s")) where name[2] == UInt8(ascii: "c"):
                self.pseudo.scheme = Self.reuse(self.previousPseudo.scheme, value) ?? InboundField.pseudoValue(value)
            case (7, UInt8(ascii: "s")):
                self.pseudo.status = Self.reuse(self.previousPseudo.status, value) ?? Self.string(value)
            case (10, UInt8(ascii: "a")):
                self.pseudo.authority = Self.reuse(self.previousPseudo.authority, value) ?? Self.string(value)
            case (5, UInt8(ascii: "p")):
                self.pseudo.path = Self.reuse(self.previousPseudo.path, value) ?? Self.string(value)
            default: break
            }
            return
        }
        if !self.diverged {
            if self.previousMatches(self.matched, name: name, value: value) {
                self.matched += 1
                return
            }
            self.diverged = true
            if self.matched > 0 { self.fields = HTTPFields(self.previousFields[0..<self.matched]) }
        }
        if let fieldName = InboundField.name(name) {
            let field = InboundField.field(fieldName, value: value)
            var fields = HTTPFields()
            swap(&fields, &self.fields)
            fields.append(field)
            swap(&fields, &self.fields)
        }
    }

    /// The regular fields of the block; a head's (not trailers') are remembered for the next block.
    func takeFields(isHead: Bool) -> HTTPFields {
        let result: HTTPFields
        if self.diverged {
            result = self.fields
            self.fields = HTTPFields()
        } else if self.matched == self.previousFields.count {
            result = self.previousFields
        } else {
            result = HTTPFields(self.previousFields[0..<self.matched])
        }
        if isHead && !(self.matched == self.previousFields.count && !self.diverged) {
            self.previousFields = result
            var bytes: [UInt8] = []
            var ends: [Int] = []
            ends.reserveCapacity(result.count * 2)
            for field in result {
                bytes.append(contentsOf: field.name.rawName.utf8)
                ends.append(bytes.count)
                field.withUnsafeBytesOfValue { bytes.append(contentsOf: $0) }
                ends.append(bytes.count)
            }
            self.previousBytes = bytes
            self.previousEnds = ends
        }
        if isHead {
            self.previousPseudo.status = self.pseudo.status
        }
        self.matched = 0
        self.diverged = false
        return result
    }

    /// The request this block is.
    /// - Returns: nil when `:method` is missing or not a token (nghttp2 lets only a valid one through).
    func takeRequest() -> HTTPRequest? {
        let fields = self.takeFields(isHead: true)
        if var request = self.previousRequest, self.pseudo.method == self.previousPseudo.method,
            self.pseudo.scheme == self.previousPseudo.scheme, self.pseudo.authority == self.previousPseudo.authority,
            self.pseudo.path == self.previousPseudo.path
        {
            request.headerFields = fields
            return request
        }
        guard let methodString = self.pseudo.method, let method = HTTPRequest.Method(methodString) else { return nil }
        // With the fields as an argument: the default `[:]` would build an empty collection first.
        let request = HTTPRequest(
            method: method, scheme: self.pseudo.scheme, authority: self.pseudo.authority, path: self.pseudo.path,
            headerFields: fields)
        self.previousRequest = request
        self.previousPseudo = self.pseudo
        return request
    }

    @inline(__always)
    private static func string(_ value: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: value, as: UTF8.self)
    }

    /// `previous` when its bytes are `value`'s.
    @inline(__always)
    private static func reuse(_ previous: String?, _ value: UnsafeBufferPointer<UInt8>) -> String? {
        guard let previous else { return nil }
        let equal = previous.utf8.withContiguousStorageIfAvailable { Self.equals($0, value) } ?? false
        return equal ? previous : nil
    }

    @inline(__always)
    private static func equals(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }

    /// Whether the previous head's field at `index` is `name: value` byte for byte (nghttp2
    /// delivers names in lowercase, as `HTTPField.Name(parsed:)` keeps them).
    @inline(__always)
    private func previousMatches(
        _ index: Int, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        let ends = self.previousEnds
        guard 2 * index + 1 < ends.count else { return false }
        let start = index == 0 ? 0 : ends[2 * index - 1]
        let nameEnd = ends[2 * index]
        let valueEnd = ends[2 * index + 1]
        let bytes = self.previousBytes
        return bytes.withUnsafeBufferPointer { bytes in
            Self.equals(UnsafeBufferPointer(rebasing: bytes[start..<nameEnd]), name)
                && Self.equals(UnsafeBufferPointer(rebasing: bytes[nameEnd..<valueEnd]), value)
        }
    }
}

/// What the fields of a header block feed.
enum HeaderBlockPurpose {
    /// Nothing: the block's stream is not open here.
    case ignored
    /// The head or trailers being built.
    case collected
    /// A server's request head whose early answer is not asked yet: asked with its first regular field.
    case requestUnasked
    /// A request head answered early: its regular fields only give the echoed value.
    case requestAnswered
}

/// The pseudo-header fields of an inbound header block.
struct PseudoHeaders {
    var method: String?
    var scheme: String?
    var authority: String?
    var path: String?
    var status: String?
}
