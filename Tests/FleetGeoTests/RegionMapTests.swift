import FleetGeo
import Foundation
import Testing

let regionFixtures = fixtures.appendingPathComponent("regions")
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite("Region maps in YAML")
struct RegionMapTests {
    @Test("Regions/default.yaml is valid and identical to the built-in default map")
    func defaultMatchesBuiltin() throws {
        let map = try RegionMap.load(path: repositoryRoot.appendingPathComponent("Regions/default.yaml").path)
        #expect(map == RegionMap.default)
        #expect(map.zone(ofRegion: "eu-north")?.countries.contains("NO") == true)
        #expect(map.region(forCountry: "EU")?.zone == "eu")
    }

    @Test("A valid map loads")
    func valid() throws {
        let map = try RegionMap.load(path: regionFixtures.appendingPathComponent("valid.yaml").path)
        #expect(map.region(forCountry: "FR")?.id == "eu-central")
        #expect(map.version == "t")
    }

    /// (file, line, key, bad value) the first error must name.
    static let invalid: [(String, Int, String, String?)] = [
        ("unknown-iso", 5, "zones.eu.countries", "XX"),
        ("lowercase-iso", 5, "zones.eu.countries", "fr"),
        ("country-in-two-regions", 15, "regions.us-east.countries", "DE"),
        ("region-without-zone", 10, "regions.eu-central.zone", nil),
        ("unknown-zone", 11, "regions.eu-central.zone", "europe"),
        ("unreachable-default", 17, "origins.private", "mars"),
        ("unknown-key", 9, "regionz", nil),
        ("bad-residency", 4, "zones.eu.residency", "strictly"),
        ("country-outside-zone", 12, "regions.eu-central.countries", "US"),
        // Central capacity is configured with central.endpoints: a map's `central:` was parsed and never used.
        ("central-outside-zone", 14, "regions.eu-central.central", nil),
        // SE in strict zone eu, in no region: its clients would follow origins.unknown, whatever zone it names.
        ("strict-country-without-region", 5, "zones.eu.countries", "SE"),
        // A region written twice: the parser's error points at the second, without quoting the file.
        ("duplicate-region", 16, "-", nil),
    ]

    @Test("Invalid maps are rejected with file:line, the key and the bad value", arguments: invalid)
    func rejected(name: String, line: Int, key: String, value: String?) {
        let path = regionFixtures.appendingPathComponent("\(name).invalid.yaml").path
        #expect {
            _ = try RegionMap.load(path: path)
        } throws: { error in
            guard let errors = error as? RegionMapErrors, let issue = errors.issues.first(where: { $0.key == key })
            else { return false }
            return issue.file == path && issue.line == line && issue.value == value
                && "\(errors)".contains("\(path):\(line):") && issue.description.count < 400
        }
    }

    @Test("Every fixture named *.invalid.yaml is rejected")
    func allInvalidRejected() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: regionFixtures.path).filter {
            $0.hasSuffix(".invalid.yaml")
        }
        #expect(names.count == Self.invalid.count)
        for name in names {
            #expect(throws: RegionMapErrors.self) {
                _ = try RegionMap.load(path: regionFixtures.appendingPathComponent(name).path)
            }
        }
    }

    @Test("All errors are reported, not just the first")
    func allErrors() {
        let yaml =
            "zones:\n  eu:\n    countries: [XX, YY]\nregions: {}\norigins: {private: a, unknown: b, noDatabase: c}\n"
        #expect { _ = try RegionMap.parse(yaml: yaml, file: "m.yaml") } throws: { error in
            ((error as? RegionMapErrors)?.issues.count ?? 0) >= 5
        }
    }

    /// helper-99: a country listed twice passed, a 5 MB `version` was logged at every reload, and a
    /// missing `countries` was reported twice, once at 0:0.
    @Test("A country listed twice, an overlong version and a missing list are each one error at their place")
    func listsAndVersion() throws {
        let valid = try String(
            contentsOf: regionFixtures.appendingPathComponent("valid.yaml"), encoding: .utf8)
        func issues(_ yaml: String) -> [RegionMapErrors.Issue] {
            do {
                _ = try RegionMap.parse(yaml: yaml, file: "m.yaml")
                return []
            } catch { return error.issues }
        }
        let twice = issues(
            valid.replacingOccurrences(of: "countries: [US]\nregions", with: "countries: [US, US]\nregions"))
        #expect(twice.map(\.key) == ["zones.us.countries"] && twice.first?.value == "US" && twice.first?.line == 8)
        let long = issues(
            valid.replacingOccurrences(of: "version: t", with: "version: " + String(repeating: "v", count: 200)))
        #expect(long.map(\.key) == ["version"] && long.first?.line == 1, "\(long)")
        let missing = issues(valid.replacingOccurrences(of: "    countries: [US]\nregions", with: "regions"))
        let required = missing.filter { $0.key == "zones.us.countries" }
        #expect(required.count == 1 && required.first.map { $0.line > 0 } == true, "\(missing)")
    }

    @Test("Garbage, empty and missing files are clear errors", arguments: ["{{{", "", "- just\n- a list\n"])
    func garbage(yaml: String) {
        #expect(throws: RegionMapErrors.self) { _ = try RegionMap.parse(yaml: yaml, file: "bad.yaml") }
    }

    @Test("A preferred zone spills to the other zones nearest first: the map's RTTs, else its centroids' distance")
    func spillOrder() {
        let map = RegionMap.default
        // Virginia: London (~5,900 km) before Paris (~6,200) and Zurich; Tokyo and Singapore last.
        #expect(map.spillZones(from: "us-east") == ["gb", "eu", "ch", "apac"])
        // San José: Tokyo (~8,300 km) before London (~8,600).
        #expect(map.spillZones(from: "us-west").first == "apac")
        // A listed RTT wins over the distance.
        var listed = map
        listed.regions["us-east"]!.neighbours["ch"] = 20
        #expect(listed.spillZones(from: "us-east").first == "ch")
        #expect(map.spillZones(from: "nowhere").isEmpty)
    }
}
