import FleetGeo
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension IPAddress {
    /// A socket peer's IP address, read from its `sockaddr`; nil for a Unix domain socket. The same
    /// address as parsing `SocketAddress.ipAddress`, without formatting it as text and parsing it
    /// back (~9 k instructions a request; issue #19). `IPAddressSocketTests` compares the two.
    init?(peer: SocketAddress) {
        switch peer {
        case .v4(let address): self.init(packed: withUnsafeBytes(of: address.address.sin_addr) { Array($0) })
        case .v6(let address): self.init(packed: withUnsafeBytes(of: address.address.sin6_addr) { Array($0) })
        case .unixDomainSocket: return nil
        }
    }
}
