extension IPAddress {
    /// An IPv6 transition mechanism that carries an IPv4 address inside an IPv6 one.
    public enum Transition: String, Sendable, Hashable {
        /// `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated): the IPv4 address in the low 32 bits.
        case ipv4Compatible
        /// `2002:AABB:CCDD::/48` (RFC 3056): the 6to4 site's IPv4 address in bits 16–47.
        case sixToFour
        /// `2001:0::/32` (RFC 4380): the client's public IPv4 address, inverted, in the low 32 bits.
        case teredo
        /// `64:ff9b::/96` (RFC 6052's well-known prefix): the IPv4 address in the low 32 bits.
        case nat64
        /// `64:ff9b:1::/48` (RFC 8215, local use): the operator picks where the IPv4 address sits,
        /// so it cannot be recovered.
        case nat64LocalUse
    }

    /// The transition mechanism this address belongs to, if any. IPv4 (and IPv4-mapped), `::` and
    /// `::1` are not transition addresses.
    public var transition: Transition? {
        let b = self.bytes
        if self.isIPv4 { return nil }
        if b[0..<12].allSatisfy({ $0 == 0 }) {
            return b[12..<15].allSatisfy({ $0 == 0 }) && b[15] <= 1 ? nil : .ipv4Compatible
        }
        if b[0] == 0x20 && b[1] == 0x02 { return .sixToFour }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0 { return .teredo }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B {
            if b[4..<12].allSatisfy({ $0 == 0 }) { return .nat64 }
            if b[4] == 0 && b[5] == 1 { return .nat64LocalUse }
        }
        return nil
    }

    /// The IPv4 address a transition address carries (as an IPv4-mapped ``IPAddress``), or nil when
    /// this is not a transition address or the mechanism does not say where the IPv4 address is.
    public var embeddedIPv4: IPAddress? {
        let b = self.bytes
        let v4: [UInt8]
        switch self.transition {
        case .ipv4Compatible?, .nat64?: v4 = Array(b[12..<16])
        case .sixToFour?: v4 = Array(b[2..<6])
        case .teredo?: v4 = b[12..<16].map { ~$0 }
        case .nat64LocalUse?, nil: return nil
        }
        return IPAddress(mappedIPv4: v4)
    }

    /// The IPv4-mapped form of four IPv4 bytes.
    init(mappedIPv4 v4: [UInt8]) {
        self.init(bytes: Array(repeating: 0, count: 10) + [0xFF, 0xFF] + v4)
    }
}
