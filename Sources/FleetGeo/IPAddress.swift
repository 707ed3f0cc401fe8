#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 address as 16 bytes (IPv4 as IPv4-mapped IPv6), parsed with `inet_pton`.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes, network order.
    public let bytes: [UInt8]

    /// Parses dotted IPv4 or IPv6 text (brackets and a zone suffix are accepted). Nil when invalid.
    public init?(_ text: some StringProtocol) {
        var s = String(text)
        // inet_pton reads a C string: text after a NUL would be ignored, so "1.2.3.4\0junk" parsed
        // (#20, found by the `origin` fuzzer in an X-Forwarded-For hop).
        guard !s.utf8.contains(0) else { return nil }
        if s.hasPrefix("[") && s.hasSuffix("]") { s = String(s.dropFirst().dropLast()) }
        if let percent = s.firstIndex(of: "%") { s = String(s[..<percent]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 {
            let b = withUnsafeBytes(of: v4.s_addr) { Array($0) }
            self.bytes = Array(repeating: 0, count: 10) + [0xFF, 0xFF] + b
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    /// An address as a socket address holds it: 4 bytes (IPv4, kept as IPv4-mapped IPv6) or 16
    /// (IPv6), network order; nil for another count. The bytes `init?(_:)` gives its text, without
    /// printing and parsing it (a client's peer, every request; issue #19).
    public init?(packed: [UInt8]) {
        switch packed.count {
        case 4: self.bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, packed[0], packed[1], packed[2], packed[3]]
        case 16: self.bytes = packed
        default: return nil
        }
    }

    /// The address in a `struct sockaddr` of `length` bytes: an `AF_INET` or `AF_INET6` one; nil
    /// for another family (a Unix domain socket). A socket peer's address read where it is, not
    /// printed and parsed back (issue #19).
    public init?(sockaddr pointer: UnsafeRawPointer, length: Int) {
        guard length >= MemoryLayout<sockaddr>.size else { return nil }
        switch Int32(pointer.load(as: sockaddr.self).sa_family) {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size:
            var address = pointer.load(as: sockaddr_in.self).sin_addr
            self.init(packed: withUnsafeBytes(of: &address) { Array($0) })
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size:
            var address = pointer.load(as: sockaddr_in6.self).sin6_addr
            self.init(packed: withUnsafeBytes(of: &address) { Array($0) })
        default:
            return nil
        }
    }

    /// Wraps 16 bytes in network order.
    init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "Internal inconsistency: an IP address is 16 bytes")
        self.bytes = bytes
    }

    /// Whether this is an IPv4 (or IPv4-mapped) address.
    public var isIPv4: Bool {
        self.bytes[0..<10].allSatisfy { $0 == 0 } && self.bytes[10] == 0xFF && self.bytes[11] == 0xFF
    }

    /// Loopback, RFC 1918 private, link-local, CGNAT, unique-local or unspecified: the `private` origin rule.
    public var isPrivateOrLocal: Bool {
        if self.isIPv4 {
            let a = self.bytes[12], b = self.bytes[13]
            return a == 127 || a == 10 || a == 0 || (a == 172 && (16...31).contains(b)) || (a == 192 && b == 168)
                || (a == 169 && b == 254) || (a == 100 && (64...127).contains(b))
        }
        if self.bytes[0..<15].allSatisfy({ $0 == 0 }) { return true }  // :: and ::1
        if self.bytes[0] & 0xFE == 0xFC { return true }  // fc00::/7
        if self.bytes[0] == 0xFE && self.bytes[1] & 0xC0 == 0x80 { return true }  // fe80::/10
        return false
    }

    /// Text form: dotted quad for IPv4, RFC 5952-ish for IPv6 via `inet_ntop`.
    public var description: String {
        var out = [CChar](repeating: 0, count: 64)
        if self.isIPv4 {
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4.s_addr) { $0.copyBytes(from: self.bytes[12..<16]) }
            inet_ntop(AF_INET, &v4, &out, 64)
        } else {
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: self.bytes) }
            inet_ntop(AF_INET6, &v6, &out, 64)
        }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
