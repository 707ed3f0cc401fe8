import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Tunnel lifecycle", .timeLimit(.minutes(2)))
struct ReconnectTests {
    @Test("An agent reconnects after the gateway restarts on the port it had")
    func reconnectAfterRestart() async throws {
        var tunnelPort = 0
        let car = try await withFleet { fleet in
            tunnelPort = fleet.tunnelPort
            return try await fleet.startCar(CarSpec("car-a", slowdown: 0.1))
        }
        // The first gateway is gone; the car keeps dialling. A new gateway on the same port gets it back.
        let port = tunnelPort
        try await withFleet(configure: { $0.tunnelPort = port }) { fleet in
            let reborn = try await fleet.startCar(CarSpec("car-b", slowdown: 0.1))
            #expect(reborn.car.tunnel.connectionCount == 1)
            #expect(reborn.car.state.hasSubscribers)  // the gateway reads its status stream
            _ = car
        }
    }

    @Test("A car that stops answering PINGs is closed once, and its session stops ticking")
    func deadCarClosedOnce() async throws {
        try await withFleet { fleet in
            let car = try await fleet.startCar(CarSpec("frozen", slowdown: 0.1))
            // Frozen: it reads nothing more, so no PING is answered (the test gateway PINGs every 200 ms).
            let channel = try #require(car.car.tunnel.channel)
            try await channel.setOption(ChannelOptions.autoRead, value: false).get()
            func dead() async throws -> Int {
                let line = try await fleet.metrics().split(separator: "\n").first {
                    $0.hasPrefix("fleet_cars_dead_total ")
                }
                return line.flatMap { Double($0.split(separator: " ")[1]) }.map { Int($0) } ?? 0
            }
            try await waitUntil("declared dead") { try await dead() >= 1 }
            try await Task.sleep(for: .seconds(2))  // ten PING intervals
            #expect(try await dead() == 1)
        }
    }

    @Test("A car with a token for another region is not routed to")
    func credentialBindsRegion() async throws {
        try await withFleet { fleet in
            let credentials = try FleetCredentials(secret: FleetFixture.testSecret)
            let token = credentials.issue(
                vehicleID: "liar", regions: ["us-east"], expires: Date().addingTimeInterval(60))
            let config = AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: fleet.tunnelPort, vehicleID: "liar", credential: token,
                region: "eu-central", hardware: .ai5, initialBackoff: .seconds(60))
            let car = SimulatedCar(
                configuration: config,
                state: VehicleState(pluggedIn: true, chargePercent: 90, link: .wifi, slotsFree: 0),
                group: fleet.group, logger: .init(label: "t"))
            let task = Task { try? await car.tunnel.run() }
            defer { task.cancel() }
            try await waitUntil("tunnel attempted") { car.tunnel.connectionCount >= 1 }
            try await Task.sleep(for: .milliseconds(200))
            #expect(fleet.gateway.core.registry.count == 0)
            #expect(!car.state.hasSubscribers)  // refused: its status stream is closed
        }
    }
}
