import NIOCore
import Testing

@testable import FleetHTTP2

/// Builds a PROXY v2 header.
func proxyHeader(command: UInt8 = 0x21, family: UInt8 = 0x11, block: [UInt8]) -> [UInt8] {
    ProxyProtocolHandler.signature + [command, family, UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
}

@Suite("PROXY protocol v2")
struct ProxyProtocolTests {
    func parse(_ bytes: [UInt8]) -> ProxyProtocolHandler.ParseResult {
        let handler = ProxyProtocolHandler(proxied: ProxiedAddress())
        handler.bufferForTesting(bytes)
        return handler.parse()
    }

    @Test("TCP over IPv4 and IPv6 give the source address; LOCAL keeps the peer")
    func addresses() throws {
        let v4 = self.parse(
            proxyHeader(block: [89, 160, 20, 112, 10, 0, 0, 1, 0x30, 0x39, 0x1F, 0x90]) + Array("GET".utf8))
        #expect(v4 == .done(try SocketAddress(ipAddress: "89.160.20.112", port: 12345), consumed: 28))
        var v6block: [UInt8] = [0x2a, 0x02, 0xd1, 0x80]
        v6block += [UInt8](repeating: 0, count: 11) + [1]
        v6block += [UInt8](repeating: 0, count: 16) + [0, 80, 0, 80]
        let v6 = self.parse(proxyHeader(family: 0x21, block: v6block))
        #expect(v6 == .done(try SocketAddress(ipAddress: "2a02:d180::1", port: 80), consumed: 52))
        #expect(self.parse(proxyHeader(command: 0x20, family: 0x00, block: [])) == .done(nil, consumed: 16))
    }

    static let signature = ProxyProtocolHandler.signature
    static let malformedCases: [([UInt8], ProxyProtocolHandler.ParseResult)] = {
        var cases: [([UInt8], ProxyProtocolHandler.ParseResult)] = []
        cases.append((Array("GET / HTTP/1.1\r\n".utf8), .invalid))
        cases.append((Array(signature.prefix(7)), .needMore))
        cases.append((proxyHeader(block: [1, 2, 3]), .invalid))  // IPv4 block too short
        cases.append((signature + [0x21, 0x11, 0x10, 0x00], .invalid))  // 4 KiB: over the limit
        let version1: [UInt8] = [0x11, 0x11, 0, 12] + [UInt8](repeating: 0, count: 12)
        cases.append((signature + version1, .invalid))  // version 1 in binary
        cases.append((Array(proxyHeader(block: [UInt8](repeating: 1, count: 12)).prefix(20)), .needMore))
        return cases
    }()

    @Test("Malformed headers are refused; partial ones wait", arguments: malformedCases)
    func malformed(bytes: [UInt8], expected: ProxyProtocolHandler.ParseResult) {
        #expect(self.parse(bytes) == expected)
    }
}

extension ProxyProtocolHandler {
    func bufferForTesting(_ bytes: [UInt8]) { self.bufferedForTesting = ByteBuffer(bytes: bytes) }
}
