import Testing

@testable import FleetGate

@Suite("CarUpstream")
struct CarUpstreamTests {
    @Test("A forwarding replica's region header is taken only when it is a region-like name")
    func regionHeader() {
        for name in ["eu-central", "us_east.2", "AP-South-1", String(repeating: "a", count: 64)] {
            #expect(CarUpstream.isRegionName(name), "\(name)")
        }
        for name in ["", "eu central", "eu fleet.route=x", "eu\ncentral", "é", String(repeating: "a", count: 65)] {
            #expect(!CarUpstream.isRegionName(name), "\(name)")
        }
    }
}
