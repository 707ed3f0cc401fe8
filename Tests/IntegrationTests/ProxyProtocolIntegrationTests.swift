import FleetAgent
import FleetGate
import FleetProtocol
import FleetTesting
import Foundation
import Testing

@Suite("PROXY protocol v2 on the client listener", .timeLimit(.minutes(2)))
struct ProxyProtocolIntegrationTests {
    static func header(ipv4: [UInt8]) -> [UInt8] {
        let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        return signature + [0x21, 0x11, 0, 12] + ipv4 + [127, 0, 0, 1, 0xC3, 0x50, 0x1F, 0x90]
    }

    static func request() -> [UInt8] {
        let body = chatBody(stream: false, maxTokens: 2)
        return Array(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
                .utf8)
    }

    @Test(
        "The source in the PROXY header is the client's origin",
        arguments: [
            ([216, 160, 83, 56] as [UInt8], "us"), ([89, 160, 20, 112], "eu"),
        ])
    func origin(source: [UInt8], zone: String) async throws {
        try await withFleet(
            cars: [
                CarSpec("eu-car", region: "eu-central", slowdown: 0.05),
                CarSpec("us-car", region: "us-east", slowdown: 0.05),
            ],
            configure: {
                $0.proxyProtocolFrom = ["127.0.0.0/8"]
                $0.geoipDatabase = cityTestDatabase
            }
        ) { fleet in
            let raw = try await RawConnection.connect(port: fleet.clientPort)
            try await raw.send(Self.header(ipv4: source) + Self.request())
            try await raw.waitForClose()
            let text = String(decoding: raw.received, as: UTF8.self).lowercased()
            #expect(text.hasPrefix("http/1.1 200"))
            #expect(text.contains("x-fleet-zone: \(zone)"))
        }
    }

    @Test("A connection without the header is closed")
    func missingHeader() async throws {
        try await withFleet(configure: { $0.proxyProtocolFrom = ["127.0.0.0/8"] }) { fleet in
            let raw = try await RawConnection.connect(port: fleet.clientPort)
            try await raw.send(Self.request())
            try await raw.waitForClose()
            #expect(raw.received.isEmpty)
        }
    }

    static func request(forwardedFor: String) -> [UInt8] {
        let body = chatBody(stream: false, maxTokens: 2)
        return Array(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nx-forwarded-for: \(forwardedFor)\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
                .utf8)
    }

    @Test("Issue #18 row 1: a PROXY header from a peer outside the configured balancers is not believed")
    func headerFromDirectClient() async throws {
        try await withFleet(configure: {
            $0.proxyProtocolFrom = ["192.0.2.0/24"]  // the balancer is elsewhere; loopback is a direct client
            $0.geoipDatabase = cityTestDatabase
        }) { fleet in
            try await fleet.startCar(CarSpec("eu-car", region: "eu-central", slowdown: 0.05))
            let us = try await fleet.startCar(CarSpec("us-car", region: "us-east", slowdown: 0.05))
            let raw = try await RawConnection.connect(port: fleet.clientPort)
            try await raw.send(Self.header(ipv4: [216, 160, 83, 56]) + Self.request())
            try await raw.waitForClose()
            let text = String(decoding: raw.received, as: UTF8.self).lowercased()
            #expect(!text.contains("x-fleet-zone: us"))
            #expect(us.car.state.jobLog.isEmpty)
        }
    }

    @Test("Issue #18 row 1: a PROXY source inside the trusted proxies does not make X-Forwarded-For believed")
    func proxySourceDoesNotChain() async throws {
        try await withFleet(configure: {
            $0.proxyProtocolFrom = ["127.0.0.0/8"]
            $0.trustedProxies = ["10.0.0.0/8", "127.0.0.0/8"]
            $0.geoipDatabase = cityTestDatabase
        }) { fleet in
            try await fleet.startCar(CarSpec("eu-car", region: "eu-central", slowdown: 0.05))
            let us = try await fleet.startCar(CarSpec("us-car", region: "us-east", slowdown: 0.05))
            let raw = try await RawConnection.connect(port: fleet.clientPort)
            try await raw.send(Self.header(ipv4: [10, 0, 0, 7]) + Self.request(forwardedFor: "216.160.83.56"))
            try await raw.waitForClose()
            let text = String(decoding: raw.received, as: UTF8.self).lowercased()
            #expect(text.hasPrefix("http/1.1 200"))
            #expect(text.contains("x-fleet-zone: eu"))  // 10.0.0.7 itself: private → eu-central
            #expect(us.car.state.jobLog.isEmpty)
        }
    }
}
