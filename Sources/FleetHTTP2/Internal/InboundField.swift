import HTTPTypes

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns the bytes of a header field nghttp2 has validated (RFC 9113 §8.2.1) into HTTP types with
/// less work than the general initializers, and the same result (`HeaderConversionTests`):
/// common names and values are taken from constants, and a value that is plain printable ASCII
/// becomes a `String` without the general UTF-8 validation `HTTPField(name:lenientValue:)` runs.
enum InboundField {
    /// The value of `:method` or `:scheme`: a constant for the common ones.
    static func pseudoValue(_ value: UnsafeBufferPointer<UInt8>) -> String {
        switch value.count {
        case 3 where Self.equals(value, "GET"): "GET"
        case 4 where Self.equals(value, "POST"): "POST"
        case 4 where Self.equals(value, "http"): "http"
        case 5 where Self.equals(value, "https"): "https"
        default: String(decoding: value, as: UTF8.self)
        }
    }

    /// The name of a regular field, which nghttp2 has checked to be a lowercase token.
    static func name(_ name: UnsafeBufferPointer<UInt8>) -> HTTPField.Name? {
        switch name.count {
        case 2 where Self.equals(name, "te"): Self.te
        case 6 where Self.equals(name, "accept"): Self.accept
        case 10 where Self.equals(name, "user-agent"): Self.userAgent
        case 12 where Self.equals(name, "content-type"): Self.contentType
        case 13 where Self.equals(name, "authorization"): Self.authorization
        case 14 where Self.equals(name, "content-length"): Self.contentLength
        case 15 where Self.equals(name, "accept-encoding"): Self.acceptEncoding
        default: HTTPField.Name(parsed: String(decoding: name, as: UTF8.self))
        }
    }

    /// The field `name: value`, keeping the value's bytes as `HTTPField(name:lenientValue:)` does.
    static func field(_ name: HTTPField.Name, value: UnsafeBufferPointer<UInt8>) -> HTTPField {
        if Self.isPlainASCII(value) {
            return HTTPField(name: name, value: String(decoding: value, as: UTF8.self))
        }
        return HTTPField(name: name, lenientValue: value)
    }

    /// Printable ASCII, with spaces and tabs only inside: a legal field value (RFC 9110 §5.5)
    /// that is its own UTF-8 string, so both initializers keep it byte for byte.
    static func isPlainASCII(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = value.first, let last = value.last else { return true }
        // The smallest and largest byte in one pass (a tab inside takes the general path).
        var low = UInt8.max
        var high = UInt8.min
        for byte in value {
            low = min(low, byte)
            high = max(high, byte)
        }
        return low >= 0x20 && high <= 0x7E && first != 0x20 && last != 0x20
    }

    @inline(__always)
    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        literal.utf8CodeUnitCount == bytes.count && memcmp(literal.utf8Start, bytes.baseAddress!, bytes.count) == 0
    }

    // As `HTTPField.Name(parsed:)` makes them: raw and canonical name both lowercase.
    private static let te = HTTPField.Name(parsed: "te")!
    private static let accept = HTTPField.Name(parsed: "accept")!
    private static let userAgent = HTTPField.Name(parsed: "user-agent")!
    private static let contentType = HTTPField.Name(parsed: "content-type")!
    private static let authorization = HTTPField.Name(parsed: "authorization")!
    private static let contentLength = HTTPField.Name(parsed: "content-length")!
    private static let acceptEncoding = HTTPField.Name(parsed: "accept-encoding")!
}
