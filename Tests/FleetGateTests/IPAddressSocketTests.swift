import FleetGeo
import NIOCore
import Testing

@testable import FleetGate

/// `IPAddress(peer:)` reads a socket address's bytes; it must give what parsing its text gives.
@Suite("A peer's IP address from its sockaddr", .timeLimit(.minutes(1)))
struct IPAddressSocketTests {
    @Test(
        "The same address as parsing SocketAddress.ipAddress",
        arguments: [
            "127.0.0.1", "0.0.0.0", "10.1.2.3", "203.0.113.250", "255.255.255.255", "::1", "::", "2001:db8::1",
            "fe80::1:2:3:4", "::ffff:198.51.100.7", "64:ff9b::c000:201", "2002:c000:201::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ])
    func sameAsText(_ text: String) throws {
        let socket = try SocketAddress(ipAddress: text, port: 443)
        let viaText = try #require(socket.ipAddress.flatMap { IPAddress($0) })
        let direct = try #require(IPAddress(peer: socket))
        #expect(direct == viaText)
        #expect(direct.bytes.count == 16)
        #expect(direct.isIPv4 == viaText.isIPv4 && direct.description == viaText.description)
    }

    @Test("A Unix domain socket has no IP address")
    func unixSocket() throws {
        #expect(IPAddress(peer: try SocketAddress(unixDomainSocketPath: "/tmp/fleetgate-test.sock")) == nil)
    }
}
