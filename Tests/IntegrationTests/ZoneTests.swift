import FleetAgent
import FleetGate
import FleetGeo
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// MaxMind's GeoIP2-City test database, from the geo tests' fixtures.
let cityTestDatabase = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../FleetGeoTests/Fixtures/GeoIP2-City-Test.mmdb").standardized.path

@Suite("Privacy zones end to end", .timeLimit(.minutes(2)))
struct ZoneTests {
    /// (forwarded-for, the zone that must serve it, or nil for 503 no_capacity_in_zone)
    static let origins: [(String, String?)] = [
        ("89.160.20.112", "eu"),  // SE
        ("2a02:d180::1", "eu"),  // DE
        ("2a02:cf40::1", "eu"),  // NO: EEA, not EU
        ("::ffff:89.160.20.112", "eu"),  // IPv4-mapped
        ("216.160.83.56", "us"),  // US
        ("2001:218::1", "apac"),  // JP
        ("8.8.8.8", "eu"),  // not in the database: the unknown rule, the strictest zone
        ("81.2.69.142", nil),  // GB: its own zone, no capacity there
        ("2a02:d000::1", nil),  // CH: its own zone, no capacity
        ("216.160.83.56, 89.160.20.112", "eu"),  // chain: the rightmost untrusted hop counts
        ("not-an-address", "eu"),  // garbage from a trusted proxy: the unknown rule, the strictest zone
    ]

    @Test("Requests are served only inside their origin's zone; an empty zone gets no_capacity_in_zone")
    func zonesHold() async throws {
        let specs = [
            CarSpec("eu-car", region: "eu-central", slowdown: 0.05),
            CarSpec("us-car", region: "us-east", slowdown: 0.05),
            CarSpec("jp-car", region: "ap-northeast", slowdown: 0.05),
        ]
        try await withFleet(configure: {
            $0.geoipDatabase = cityTestDatabase
            $0.trustedProxies = ["127.0.0.0/8", "::1"]
        }) { fleet in
            var cars: [String: TestCar] = [:]
            for spec in specs { cars[spec.vehicleID] = try await fleet.startCar(spec) }
            let zoneOf = ["eu-car": "eu", "us-car": "us", "jp-car": "apac"]
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var expected: [String: String?] = [:]
            var refused = 0
            for round in 0..<3 {
                for (index, (forwarded, zone)) in Self.origins.enumerated() {
                    let id = "zone-\(round)-\(index)"
                    expected[id] = zone
                    var headers = HTTPFields()
                    headers[HTTPField.Name("x-forwarded-for")!] = forwarded
                    headers[HTTPField.Name("x-request-id")!] = id
                    let result = try await client.post(
                        "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2), headers: headers
                    ).collect()
                    if let zone {
                        #expect(result.response?.status == .ok, "\(forwarded)")
                        #expect(result.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == zone, "\(forwarded)")
                    } else {
                        #expect(result.response?.status.code == 503, "\(forwarded)")
                        #expect(result.body.contains("no_capacity_in_zone"))
                        refused += 1
                    }
                }
            }
            // Count from what each car itself ran, not from response headers.
            var violations = 0
            var servedByZone: [String: Int] = [:]
            for (name, car) in cars {
                for id in car.car.state.jobLog {
                    servedByZone[zoneOf[name]!, default: 0] += 1
                    if expected[id] != zoneOf[name] { violations += 1 }
                }
            }
            #expect(violations == 0)
            #expect(servedByZone["eu"] == 3 * 7 && servedByZone["us"] == 3 && servedByZone["apac"] == 3)
            #expect(refused == 3 * 2)
        }
    }

    @Test("Forwarding headers from an untrusted peer are ignored")
    func untrustedForwardedFor() async throws {
        try await withFleet(
            cars: [
                CarSpec("eu-car", region: "eu-central", slowdown: 0.05),
                CarSpec("us-car", region: "us-east", slowdown: 0.05),
            ],
            configure: { $0.geoipDatabase = cityTestDatabase }
        ) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var headers = HTTPFields()
            headers[HTTPField.Name("x-forwarded-for")!] = "216.160.83.56"  // claims to be in the US
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2), headers: headers
            ).collect()
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")  // loopback peer: private → eu-central
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-region")!] == "eu-central")
        }
    }

    @Test(
        "Issue #18 row 3: an unusable or private rightmost X-Forwarded-For from a trusted proxy is unknown, never the proxy's private rule",
        arguments: ["89.160.20.112:51234", "[2a02:d180::1]:443", "unknown", "0x59.0xa0.20.112", "192.168.1.7"])
    func unusableForwardedFor(forwarded: String) async throws {
        try await withFleet(
            configure: {
                $0.geoipDatabase = cityTestDatabase
                $0.trustedProxies = ["127.0.0.0/8"]
                $0.regionMap.privateRegion = "us-east"  // the proxy's own (loopback) address would land here
            }
        ) { fleet in
            try await fleet.startCar(CarSpec("eu-car", region: "eu-central", slowdown: 0.05))
            let us = try await fleet.startCar(CarSpec("us-car", region: "us-east", slowdown: 0.05))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var headers = HTTPFields()
            headers[HTTPField.Name("x-forwarded-for")!] = forwarded
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2), headers: headers
            ).collect()
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")  // unknown: strictest
            #expect(result.response?.headerFields[HTTPField.Name("x-fleet-region")!] == "eu-central")
            #expect(us.car.state.jobLog.isEmpty)  // counted from what the US car ran
        }
    }

    /// helper-64: the map's `residency: preferred` was read and never applied, so a US app got 503
    /// `no_capacity_in_zone` (not to be retried) with the EU's cars idle.
    @Test(
        "A preferred zone with nothing for the model spills to the nearest zone that has; a strict or pinned one never does"
    )
    func preferredZoneSpills() async throws {
        try await withFleet(configure: {
            $0.geoipDatabase = cityTestDatabase
            $0.trustedProxies = ["127.0.0.0/8", "::1"]
        }) { fleet in
            let eu = try await fleet.startCar(CarSpec("eu-car", region: "eu-central", slowdown: 0.05))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func post(
                _ forwarded: String, id: String, residency: String? = nil
            ) async throws -> (response: HTTPResponse?, body: String) {
                var headers = HTTPFields()
                headers[HTTPField.Name("x-forwarded-for")!] = forwarded
                headers[HTTPField.Name("x-request-id")!] = id
                if let residency { headers[HTTPField.Name("x-fleet-residency")!] = residency }
                let result = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2), headers: headers
                ).collect()
                return (result.response, result.body)
            }
            let zone = HTTPField.Name("x-fleet-zone")!
            // US (preferred, nothing there): the nearest zone with capacity, the EU.
            let us = try await post("216.160.83.56", id: "spill-us")
            #expect(us.response?.status == .ok && us.response?.headerFields[zone] == "eu", "\(us.body)")
            #expect(us.response?.headerFields[HTTPField.Name("x-fleet-origin-region")!] == "us-east")
            // JP (preferred): the same.
            let jp = try await post("2001:218::1", id: "spill-jp")
            #expect(jp.response?.status == .ok && jp.response?.headerFields[zone] == "eu", "\(jp.body)")
            // GB (strict): never, whatever is idle elsewhere.
            let gb = try await post("81.2.69.142", id: "strict-gb")
            #expect(gb.response?.status.code == 503 && gb.body.contains("no_capacity_in_zone"), "\(gb.body)")
            // A US client that pinned its zone: not moved either.
            let pinned = try await post("216.160.83.56", id: "pinned-us", residency: "us")
            #expect(pinned.response?.status.code == 503 && pinned.body.contains("no_capacity_in_zone"))
            #expect(
                try await fleet.series("fleet_zone_spills_total", with: ["from": "us", "to": "eu"]).map(\.value) == [1])
            #expect(
                try await fleet.series("fleet_zone_spills_total", with: ["from": "apac", "to": "eu"]).map(\.value) == [
                    1
                ])
            // Once the US has a car, its traffic stays home.
            let usCar = try await fleet.startCar(CarSpec("us-car", region: "us-east", slowdown: 0.05))
            let home = try await post("216.160.83.56", id: "home-us")
            #expect(home.response?.status == .ok && home.response?.headerFields[zone] == "us", "\(home.body)")
            // Counted from what each car ran, not from headers.
            #expect(Set(eu.car.state.jobLog) == ["spill-us", "spill-jp"])
            #expect(usCar.car.state.jobLog == ["home-us"])
        }
    }
}
