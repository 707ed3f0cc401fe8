import FleetConfiguration
import FleetGate
import FleetGeo

/// Target `regions`: the input is a YAML file, read as a region map (`Regions/*.yaml`) and as the
/// gateway's configuration file (`fleetgate.yaml`): both are walked with Yams keeping each node's
/// mark, so that every error names file:line:column.
///
/// Invariants beyond "no crash":
/// - a map that loads is consistent: the origin rules name declared regions, every region's zone
///   exists and holds the region's countries, no country is in two zones, neighbours exist;
/// - a file that does not load says why, every problem at a position inside the file.
enum RegionsFuzz {
    static let file = "fuzz.yaml"

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        // Both loaders read files as UTF-8 and refuse anything else before parsing.
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        let lines = text.utf8.count(where: { $0 == UInt8(ascii: "\n") }) + 1
        var map: RegionMap?
        do throws(RegionMapErrors) {
            map = try RegionMap.parse(yaml: text, file: Self.file)
        } catch {
            try check(!error.issues.isEmpty, "a region map refused without a reason")
            for issue in error.issues {
                try check(issue.file == Self.file, "a region map issue names another file")
                try check(
                    (0...lines + 1).contains(issue.line) && issue.column >= 0,
                    "a region map issue at \(issue.line):\(issue.column), outside a \(lines)-line file")
            }
        }
        if let map { try Self.checkMap(map) }
        do throws(ConfigurationErrors) {
            let config = try ConfigFile.parse(
                yaml: text, file: Self.file, schema: GatewayConfiguration.schema, environmentPrefix: "FLEETGATE")
            _ = config.provider()
        } catch {
            try check(!error.errors.isEmpty, "a configuration file refused without a reason")
            for location in error.errors.compactMap(\.location) {
                try check(location.file == Self.file, "a configuration error names another file")
                try check(
                    (0...lines + 1).contains(location.line) && location.column >= 0,
                    "a configuration error at \(location.line):\(location.column), outside a \(lines)-line file")
            }
        }
    }

    static func checkMap(_ map: RegionMap) throws(FuzzFinding) {
        for rule in [map.privateRegion, map.unknownRegion, map.noDatabaseRegion] {
            try check(map.regions[rule] != nil, "an origin rule names the undeclared region '\(rule)'")
        }
        var zoneOfCountry: [String: String] = [:]
        for zone in map.zones.values {
            for country in zone.countries {
                try check(zoneOfCountry.updateValue(zone.id, forKey: country) == nil, "\(country) is in two zones")
            }
        }
        for region in map.regions.values {
            guard let zone = map.zone(ofRegion: region.id) else {
                throw FuzzFinding("region '\(region.id)' has no zone")
            }
            try check(region.countries.isSubset(of: zone.countries), "region '\(region.id)' leaves its zone")
            for country in region.countries {
                try check(map.region(forCountry: country)?.id == region.id, "\(country) maps to another region")
            }
            for neighbour in region.neighbours.keys {
                try check(map.regions[neighbour] != nil, "region '\(region.id)' names the neighbour '\(neighbour)'")
            }
        }
    }
}
