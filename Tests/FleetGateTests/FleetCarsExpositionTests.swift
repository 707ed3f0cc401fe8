import CoreMetrics
import FleetProtocol
import FleetScheduler
import Testing

@testable import FleetGate

@Suite("fleet_cars rendered at scrape time")
struct FleetCarsExpositionTests {
    private func text(_ exposition: FleetCarsExposition) -> [String] {
        var buffer: [UInt8] = []
        exposition.write(into: &buffer)
        return String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("Each map region's serving series is at 0; cars count under their labels, sorted; values escaped")
    func rendering() {
        typealias L = FleetCarsExposition.Labels
        let cars = [
            L(region: "eu-central", zone: "eu", state: "serving", plugged: true),
            L(region: "eu-central", zone: "eu", state: "serving", plugged: true),
            L(region: "eu-central", zone: "eu", state: "charging", plugged: true),
            L(region: "us-east", zone: "us", state: "unplugged", plugged: false),
            // A car whose region a reload removed, still draining.
            L(region: "gone", zone: "eu", state: "draining", plugged: true),
            L(region: #"we"ird\"#, zone: "a\nb", state: "serving", plugged: true),
        ]
        let lines = self.text(
            FleetCarsExposition(cars: cars, regions: ["eu-central": "eu", "us-east": "us", "gb": "gb"]))
        #expect(
            lines == [
                "# TYPE fleet_cars gauge",
                #"fleet_cars{region="eu-central",zone="eu",state="charging",plugged="true"} 1"#,
                #"fleet_cars{region="eu-central",zone="eu",state="serving",plugged="true"} 2"#,
                #"fleet_cars{region="gb",zone="gb",state="serving",plugged="true"} 0"#,
                #"fleet_cars{region="gone",zone="eu",state="draining",plugged="true"} 1"#,
                #"fleet_cars{region="us-east",zone="us",state="serving",plugged="true"} 0"#,
                #"fleet_cars{region="us-east",zone="us",state="unplugged",plugged="false"} 1"#,
                #"fleet_cars{region="we\"ird\\",zone="a\nb",state="serving",plugged="true"} 1"#,
            ])
    }

    @Test("A map of 20,000 regions renders one line per region")
    func bigMap() {
        let regions = Dictionary(uniqueKeysWithValues: (0..<20_000).map { ("r\($0)", "z\($0 % 7)") })
        let lines = self.text(FleetCarsExposition(cars: [], regions: regions))
        #expect(lines.count == 20_001)
        #expect(lines.last == #"fleet_cars{region="r9999",zone="z3",state="serving",plugged="true"} 0"#)
    }

    @Test("A car is counted where its primary tunnel is: a sum over replicas counts it once (helper-109)")
    func primaryOnly() {
        let registry = FleetRegistry()
        for (id, primary) in [("a", true), ("b", false)] {
            var descriptor = CarDescriptor(
                vehicleID: id, pseudonym: "p-\(id)", region: "eu-central", zone: "eu", hardware: .hw4,
                models: [ModelOffer(id: "m", decodeTokensPerSecond: 20, prefillTokensPerSecond: 1200)], slots: 2,
                policy: OwnerPolicy())
            descriptor.primary = primary
            _ = registry.register(
                descriptor, state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2))
        }
        let metrics = FleetStateMetrics(factory: NOOPMetricsHandler.instance)
        let exposition = metrics.publish(
            cars: registry.all(), regions: ["eu-central": "eu"], inFlight: 0,
            geoipBuildEpoch: nil, certificateExpiry: [:], buffered: (0, 0))
        #expect(
            self.text(exposition).contains(
                #"fleet_cars{region="eu-central",zone="eu",state="serving",plugged="true"} 1"#))
    }
}
