import FleetGeo
import NIOCore

extension IPAddress {
    /// A socket peer's IP address, read from its `sockaddr`; nil for a Unix domain socket. The same
    /// address as parsing `SocketAddress.ipAddress`, without formatting it as text and parsing it
    /// back (~9 k instructions a request; issue #19). `IPAddressSocketTests` compares the two.
    init?(peer: SocketAddress) {
        guard let address = peer.withSockAddr({ IPAddress(sockaddr: UnsafeRawPointer($0), length: $1) }) else {
            return nil
        }
        self = address
    }
}
