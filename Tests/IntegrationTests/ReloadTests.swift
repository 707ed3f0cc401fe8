import FleetAgent
import FleetGate
import FleetGeo
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

@Suite("Hot reload of the region map", .timeLimit(.minutes(2)))
struct ReloadTests {
    static let defaultYAML = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Regions/default.yaml").standardized

    func admin(_ fleet: FleetFixture, _ method: HTTPRequest.Method, _ path: String) async throws -> (Int, String) {
        let client = try await RecordingClient.connect(port: fleet.adminPort)
        defer { client.close() }
        var request = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: path)
        if method == .post { request.headerFields[.contentType] = "application/json" }  // the admin guard's rule
        let result = try await client.send(request, body: method == .post ? ByteBuffer() : nil).collect()
        return (result.response?.status.code ?? 0, result.body)
    }

    @Test(
        "A bad map, or one moving a region to another zone, is refused and the running map stays; a good one swaps in while a stream runs"
    )
    func reload() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fleet-regions-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let original = try String(contentsOf: Self.defaultYAML, encoding: .utf8)
        try original.write(to: file, atomically: true, encoding: .utf8)
        let log = CapturedLog()
        try await withFleet(
            configure: {
                $0.regionMap = try! RegionMap.load(path: file.path)
                $0.regionsFile = file.path
                $0.geoipDatabase = cityTestDatabase
                $0.trustedProxies = ["127.0.0.0/8"]
            }, log: log
        ) { fleet in
            let car = try await fleet.startCar(CarSpec("eu-car", region: "eu-central", hardware: .ai5, slowdown: 0.5))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            var fromSweden = HTTPFields()
            fromSweden[HTTPField.Name("x-forwarded-for")!] = "89.160.20.112"
            let before = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 1), headers: fromSweden
            ).collect()
            #expect(before.response?.headerFields[HTTPField.Name("x-fleet-origin-region")!] == "eu-north")

            // A long stream runs across both reloads.
            let running = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 60), headers: fromSweden)
            try await waitUntil("streaming") { car.engine.tokensGenerated >= 5 }

            try original.replacingOccurrences(of: "countries: [SE, FI,", with: "countries: [SE, XX, FI,")
                .write(to: file, atomically: true, encoding: .utf8)
            let (badStatus, badBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(badStatus == 422)
            #expect(badBody.contains("\(file.path):") && badBody.contains("XX"))
            #expect(try await self.admin(fleet, .get, "/admin/regions").1.contains("\"version\":\"default-2026-11\""))

            // Another map under the same version: taken, and said (helper-101: silently).
            try original.replacingOccurrences(of: "{lat: 50.11, lon: 8.68}", with: "{lat: 50.11, lon: 8.69}")
                .write(to: file, atomically: true, encoding: .utf8)
            let (sameStatus, sameBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(sameStatus == 200, "\(sameBody)")
            #expect(sameBody.contains("kept its version 'default-2026-11'"), "\(sameBody)")

            // Sweden moves to eu-central, with a new version.
            try original.replacingOccurrences(of: "version: default-2026-11", with: "version: moved-se")
                .replacingOccurrences(of: "countries: [SE, FI,", with: "countries: [FI,")
                .replacingOccurrences(of: "countries: [DE, AT,", with: "countries: [SE, DE, AT,")
                .write(to: file, atomically: true, encoding: .utf8)
            let (okStatus, okBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(okStatus == 200)
            #expect(okBody.contains("\"version\":\"moved-se\""))
            // The report (and the log line) says the map changed, which no key does (helper-131).
            #expect(okBody.contains("\"changed\":true"), "\(okBody)")
            // A map-only reload reads no key: its line names none (helper-136: `fleet.config.changed=`, empty).
            let reloaded = try #require(log.matching("Region map and GeoIP database reloaded").last)
            #expect(reloaded.metadata["fleet.regions.changed"] == "true", "\(reloaded.metadata)")
            #expect(reloaded.metadata["fleet.regions.version"] == "moved-se", "\(reloaded.metadata)")
            #expect(reloaded.metadata["fleet.config.changed"] == nil, "\(reloaded.metadata)")
            #expect(reloaded.metadata["fleet.config.restart_required"] == nil, "\(reloaded.metadata)")
            #expect(try await self.admin(fleet, .post, "/admin/regions/reload").1.contains("\"changed\":false"))
            let after = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 1), headers: fromSweden
            ).collect()
            #expect(after.response?.headerFields[HTTPField.Name("x-fleet-origin-region")!] == "eu-central")

            let result = await running.collect()
            #expect(try ssePayloads(result.body).last == "[DONE]")

            // eu-central, where the car joined zone eu, and us-east swap zones and countries (a valid map):
            // refused — the car would go on serving EU requests in a region the new map puts in the US.
            let euCentral =
                "  eu-central:\n    zone: eu\n    countries: [DE, AT, PL, CZ, SK, HU, SI, HR, RO, BG, GR, CY, LI]"
            let usEast = "  us-east:\n    zone: us\n    countries: [US, CA, PR]"
            #expect(original.contains(euCentral) && original.contains(usEast))
            try original.replacingOccurrences(of: "version: default-2026-11", with: "version: moved-zone")
                .replacingOccurrences(of: euCentral, with: "  eu-central:\n    zone: us\n    countries: [US, CA, PR]")
                .replacingOccurrences(
                    of: usEast,
                    with:
                        "  us-east:\n    zone: eu\n    countries: [DE, AT, PL, CZ, SK, HU, SI, HR, RO, BG, GR, CY, LI]"
                )
                .write(to: file, atomically: true, encoding: .utf8)
            // `regions check --against` the running map says so before the reload does (helper-70).
            let checked = try await Subprocess.run(
                GatewayProcess.binary, ["regions", "check", "--against", Self.defaultYAML.path, file.path])
            #expect(checked.status != 0 && checked.stderr.contains("region 'eu-central' moves from zone 'eu'"))
            // With the line, column and key of the zone that moved, and no "ok" for the map (helper-99,
            // helper-131: the line alone, where the reload's refusal gives line:column).
            #expect(checked.stderr.contains(": key 'regions.eu-central.zone': 'us': "), "\(checked.stderr)")
            #expect(checked.stderr.range(of: #"\.yaml:\d+:\d+: key"#, options: .regularExpression) != nil)
            #expect(!checked.stdout.contains(": ok ("), "\(checked.stdout)")
            let (movedStatus, movedBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(movedStatus == 422, "\(movedBody)")
            #expect(movedBody.contains("region 'eu-central' moves from zone 'eu' to zone 'us'"), "\(movedBody)")
            #expect(movedBody.contains("region 'us-east' moves from zone 'us' to zone 'eu'"), "\(movedBody)")
            #expect(try await self.admin(fleet, .get, "/admin/regions").1.contains("\"version\":\"moved-se\""))
            let stillEU = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 1), headers: fromSweden
            ).collect()
            #expect(stillEU.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")

            // The same move in two reloads that each pass the map-to-map check: eu-central goes, its
            // countries to eu-west; then it comes back in zone us. The car that joined eu-central in zone
            // eu leaves after the first, but finishes its stream first, and while it does the second is
            // refused.
            let leaving = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 60), headers: fromSweden)
            let generated = car.engine.tokensGenerated
            try await waitUntil("streaming again") { car.engine.tokensGenerated >= generated + 5 }
            let euCentralBlock =
                euCentral
                + "\n    centroid: {lat: 50.11, lon: 8.68}\n    neighbours: {eu-west: 12, eu-north: 20, ch: 8}\n"
            #expect(original.contains(euCentralBlock))
            let withoutEUCentral = original.replacingOccurrences(of: euCentralBlock, with: "")
                .replacingOccurrences(
                    of: "MT, EU]", with: "MT, EU, DE, AT, PL, CZ, SK, HU, SI, HR, RO, BG, GR, CY, LI]"
                )
                .replacingOccurrences(of: "{eu-central: 12, ", with: "{")
                .replacingOccurrences(of: "{eu-central: 20, ", with: "{")
                .replacingOccurrences(of: "{eu-central: 8}", with: "{}")
                .replacingOccurrences(of: ": eu-central ", with: ": eu-west ")
            try withoutEUCentral.replacingOccurrences(of: "version: default-2026-11", with: "version: removed")
                .write(to: file, atomically: true, encoding: .utf8)
            let (removedStatus, removedBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(removedStatus == 200, "\(removedBody)")
            let backInUS = withoutEUCentral.replacingOccurrences(
                of: "version: default-2026-11", with: "version: back-in-us"
            )
            .replacingOccurrences(of: "countries: [US, CA, PR]", with: "countries: [US, CA]")
            .replacingOccurrences(
                of: "\n  us-west:", with: "\n  eu-central:\n    zone: us\n    countries: [PR]\n  us-west:"
            )
            try backInUS.write(to: file, atomically: true, encoding: .utf8)
            let (backStatus, backBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(backStatus == 422, "\(backBody)")
            #expect(backBody.contains("since the gateway started"), "\(backBody)")
            // Where, as the map's other errors say it (file:line:column and the key).
            let zoneLine = try #require(backInUS.components(separatedBy: "\n").firstIndex(of: "  eu-central:")) + 2
            #expect(backBody.contains(".yaml:\(zoneLine):11: key 'regions.eu-central.zone'"), "\(backBody)")
            #expect(try await self.admin(fleet, .get, "/admin/regions").1.contains("\"version\":\"removed\""))
            // The car finished its stream, then left: its region is not in the map.
            let left = await leaving.collect()
            #expect(try ssePayloads(left.body).last == "[DONE]", "\(left.body.suffix(300))")
            try await waitUntil("the car of the removed region left") { fleet.gateway.core.registry.count == 0 }
            // With its cars gone the move is still refused: the region has been in zone eu since the
            // gateway started (helper-101: the same two reloads, the second after the cars left, moved it).
            let (goneStatus, goneBody) = try await self.admin(fleet, .post, "/admin/regions/reload")
            #expect(goneStatus == 422, "\(goneBody)")
            #expect(goneBody.contains("region 'eu-central' moves from zone 'eu' to zone 'us'"), "\(goneBody)")
            // The car dials again and is refused: its region is not in the map; each refusal is counted
            // (helper-101: 25 refusals showed in no metric, and the log says so once a minute).
            try await waitUntil("the car's redial refused and counted") {
                let metrics = try await self.admin(fleet, .get, "/metrics").1
                return metrics.contains(#"fleet_car_refused_total{reason="region"} "#)
                    && !metrics.contains(#"fleet_car_refused_total{reason="region"} 0"#)
            }

            let metrics = try await self.admin(fleet, .get, "/metrics").1
            // The map in use on /metrics, the earlier ones' series gone (helper-101: only the admin API said).
            let info = metrics.split(separator: "\n").filter { $0.hasPrefix("fleet_regions_info{") }
            #expect(info == [#"fleet_regions_info{version="removed"} 1.0"#], "\(info)")
            #expect(metrics.contains("fleet_regions_reloads_total{result=\"ok\"} 4"))
            #expect(metrics.contains("fleet_regions_reloads_total{result=\"error\"} 4"))
        }
    }

    @Test("regions check warns of an unknown origin served outside the strict zones (helper-73)")
    func unknownOutsideStrict() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fleet-regions-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let original = try String(contentsOf: Self.defaultYAML, encoding: .utf8)
        #expect(original.contains("  unknown: eu-central "))
        try original.replacingOccurrences(of: "  unknown: eu-central ", with: "  unknown: us-east    ")
            .write(to: file, atomically: true, encoding: .utf8)
        let checked = try await Subprocess.run(GatewayProcess.binary, ["regions", "check", file.path])
        #expect(checked.status == 0)
        #expect(
            checked.stdout.contains("warning: origins.unknown is region 'us-east' in zone 'us', which is not strict"))
        let plain = try await Subprocess.run(GatewayProcess.binary, ["regions", "check", Self.defaultYAML.path])
        #expect(!plain.stdout.contains("warning"), "\(plain.stdout)")
    }
}
