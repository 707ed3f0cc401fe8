import Foundation

/// An address block such as `10.0.0.0/8` or `fd00::/8`, for the trusted-proxy list.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    /// Prefix length in bits over the 16-byte form (IPv4 prefixes are offset by 96).
    public let prefixLength: Int
    private let text: String

    /// Parses `addr/len` or a bare address (a /32 or /128). Nil for anything else, including an
    /// empty text, `/` and a missing length (`10.0.0.0/`).
    public init?(_ text: String) {
        // Empty parts are kept: "" and "/" once trapped on parts[0] (#20, found by the `origin` fuzzer).
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let address = IPAddress(first) else { return nil }
        let maxBits = address.isIPv4 ? 32 : 128
        let bits = parts.count == 2 ? Int(parts[1]) : maxBits
        guard let bits, (0...maxBits).contains(bits) else { return nil }
        self.address = address
        self.prefixLength = address.isIPv4 ? bits + 96 : bits
        self.text = text
    }

    /// Whether `other` is inside this block.
    public func contains(_ other: IPAddress) -> Bool {
        var remaining = self.prefixLength
        for i in 0..<16 where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if self.address.bytes[i] & mask != other.bytes[i] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String { self.text }
}
