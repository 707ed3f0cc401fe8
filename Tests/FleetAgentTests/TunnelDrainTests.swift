import FleetAgent
import FleetHTTP2
import FleetProtocol
import NIOCore
import Testing

@Suite("A draining car's tunnel")
struct TunnelDrainTests {
    /// helper-130: a car announcing a 60 s drain closed its tunnel at the HTTP/2 default's 30 s and cut
    /// streams the gateway had been told would finish; one announcing 20 s held its tunnel for 30.
    @Test("The tunnel's graceful shutdown lasts drainSeconds, whatever tunnelHTTP2 says")
    func drainTime() {
        var http2 = AgentConfiguration.tunnelHTTP2Defaults
        http2.gracefulShutdownTimeout = .seconds(4)
        for drain in [0, 20, 60] {
            let configuration = AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: 1, vehicleID: "v", credential: "t", region: "eu-central",
                hardware: .hw4, drainSeconds: drain, http2: http2)
            #expect(configuration.tunnelHTTP2.gracefulShutdownTimeout == .seconds(Int64(drain)))
            #expect(configuration.tunnelHTTP2.maxResetsPerSecond == http2.maxResetsPerSecond, "the rest as given")
        }
    }
}
