import FleetGeo

/// An IPv4 CIDR block as numbers: where client addresses of one country are drawn from.
package struct IPv4Block: Sendable, Hashable {
    package var base: UInt32
    package var prefixLength: Int

    /// Parses `a.b.c.d/n`; nil for anything else (IPv6 included).
    package init?(_ text: String) {
        guard let cidr = CIDR(text), cidr.address.isIPv4 else { return nil }
        self.prefixLength = cidr.prefixLength - 96
        let base = cidr.address.bytes.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        self.base = self.prefixLength == 0 ? 0 : base & ~(UInt32.max >> UInt32(self.prefixLength))
    }

    /// Addresses after the base: 2^(32 − prefix) − 1.
    package var hostMask: UInt32 { self.prefixLength == 0 ? .max : UInt32.max >> UInt32(self.prefixLength) }

    /// The address `offset` (masked to the block) after the base, as dotted text.
    package func address(_ offset: UInt32) -> String {
        let v = self.base | (offset & self.hostMask)
        return "\(v >> 24).\(v >> 16 & 255).\(v >> 8 & 255).\(v & 255)"
    }
}
