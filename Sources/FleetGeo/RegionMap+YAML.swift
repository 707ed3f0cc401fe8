internal import FleetConfiguration
import Foundation
internal import Yams

/// Every problem found in a region map file, each with file:line:column, the key and the bad value.
public struct RegionMapErrors: Error, Sendable, CustomStringConvertible {
    public struct Issue: Sendable, Hashable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var column: Int
        public var key: String
        public var value: String?
        public var message: String

        public init(file: String, line: Int, column: Int, key: String, value: String?, message: String) {
            self.file = file
            self.line = line
            self.column = column
            self.key = key
            self.value = value
            self.message = message
        }

        public var description: String {
            "\(self.file):\(self.line):\(self.column): key '\(self.key)'" + (self.value.map { ": '\($0)'" } ?? "")
                + ": \(self.message)"
        }
    }

    public var issues: [Issue]
    public var description: String { self.issues.map(\.description).joined(separator: "\n") }
}

extension RegionMap {
    /// Loads and validates a region map file (format: `docs/regions.md`).
    /// - Throws: ``RegionMapErrors`` with every problem found, not just the first.
    public static func load(path: String) throws(RegionMapErrors) -> RegionMap {
        // helper-99: a 5 MB map loaded, and every reload logged and served it whole; the default is 4 KiB.
        let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? 0
        guard size <= Self.maxFileBytes else {
            throw RegionMapErrors(issues: [
                .init(
                    file: path, line: 0, column: 0, key: "-", value: nil,
                    message: "the file is \(size) bytes, over the \(Self.maxFileBytes) a region map may have")
            ])
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw RegionMapErrors(issues: [
                .init(
                    file: path, line: 0, column: 0, key: "-", value: nil,
                    message: "cannot read the file: \(error.localizedDescription)")
            ])
        }
        return try self.parse(yaml: text, file: path)
    }

    /// The largest region map file loaded (the world's ~250 countries fit many times over).
    public static let maxFileBytes = 1 << 20
    /// The longest `version` (it is logged at each reload and shown by the admin API).
    public static let maxVersionCharacters = 128

    /// Parses and validates region map YAML; `file` names it in errors.
    public static func parse(yaml: String, file: String) throws(RegionMapErrors) -> RegionMap {
        var reader = MapReader(file: file)
        let map = reader.read(yaml)
        guard reader.issues.isEmpty, let map else { throw RegionMapErrors(issues: reader.issues) }
        return map
    }
}

/// Walks the YAML node tree, collecting issues with their marks.
private struct MapReader {
    let file: String
    var issues: [RegionMapErrors.Issue] = []

    init(file: String) { self.file = file }

    mutating func issue(_ node: Node?, _ key: String, _ value: String?, _ message: String) {
        let mark = node?.mark
        self.issues.append(
            .init(
                file: self.file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, value: value,
                message: message))
    }

    /// The entries of a mapping node, reporting keys not in `allowed`.
    mutating func entries(_ node: Node?, _ path: String, allowed: Set<String>? = nil) -> [(
        key: String, keyNode: Node, value: Node
    )] {
        guard let node else { return [] }
        guard let mapping = node.mapping else {
            self.issue(node, path, node.scalar?.string, "must be a mapping")
            return []
        }
        var out: [(String, Node, Node)] = []
        var seen = Set<String>()
        for (k, v) in mapping {
            guard let key = k.scalar?.string else {
                self.issue(k, path, nil, "keys must be plain strings")
                continue
            }
            if let allowed, !allowed.contains(key) {
                self.issue(
                    k, path.isEmpty ? key : "\(path).\(key)", nil,
                    "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
                continue
            }
            if !seen.insert(key).inserted { self.issue(k, path.isEmpty ? key : "\(path).\(key)", nil, "appears twice") }
            out.append((key, k, v))
        }
        return out
    }

    mutating func string(_ node: Node?, _ path: String) -> String? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, !s.isEmpty else {
            self.issue(node, path, nil, "must be a non-empty string")
            return nil
        }
        return s
    }

    mutating func number(_ node: Node?, _ path: String, range: ClosedRange<Double>) -> Double? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, let d = Double(s), range.contains(d) else {
            self.issue(node, path, node.scalar?.string, "must be a number in \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return d
    }

    /// A sequence of country codes, each checked against ISO 3166-1.
    /// - Parameter owner: where a missing list is reported (the zone's or region's entry).
    mutating func countries(_ node: Node?, _ path: String, owner: Node?) -> [(String, Node)] {
        guard let node else {
            self.issue(owner, path, nil, "is required")
            return []
        }
        guard let sequence = node.sequence else {
            self.issue(node, path, node.scalar?.string, "must be a list of ISO 3166-1 alpha-2 codes")
            return []
        }
        var out: [(String, Node)] = []
        for item in sequence {
            guard let code = item.scalar?.string else {
                self.issue(item, path, nil, "must be a country code")
                continue
            }
            guard ISOCountries.all.contains(code) else {
                self.issue(
                    item, path, code,
                    code.uppercased() != code && ISOCountries.all.contains(code.uppercased())
                        ? "country codes are upper case" : "not an ISO 3166-1 alpha-2 country code")
                continue
            }
            // helper-99: `[CH, CH]` passed without a word.
            guard !out.contains(where: { $0.0 == code }) else {
                self.issue(item, path, code, "is listed twice")
                continue
            }
            out.append((code, item))
        }
        return out
    }

    mutating func read(_ yaml: String) -> RegionMap? {
        let root: Node?
        do { root = try YAMLSyntaxError.compose(yaml) } catch {
            self.issues.append(
                .init(
                    file: self.file, line: error.line, column: error.column, key: "-", value: nil,
                    message: "not valid YAML: \(error.message)"))
            return nil
        }
        guard let root else {
            self.issue(nil, "-", nil, "the file is empty")
            return nil
        }
        let top = Dictionary(
            self.entries(root, "", allowed: ["version", "zones", "regions", "origins"]).map { ($0.key, $0.value) },
            uniquingKeysWith: { a, _ in a })
        var version = self.string(top["version"], "version") ?? "unversioned"
        if version.count > RegionMap.maxVersionCharacters {
            self.issue(
                top["version"], "version", String(version.prefix(40)) + "…",
                "is over \(RegionMap.maxVersionCharacters) characters")
            version = "unversioned"
        }

        // Zones.
        var zones: [RegionMap.Zone] = []
        var zoneOfCountry: [String: String] = [:]
        var strictCountries: [(code: String, zone: String, node: Node)] = []
        if top["zones"] == nil { self.issue(root, "zones", nil, "is required") }
        for (id, _, value) in self.entries(top["zones"], "zones") {
            let fields = Dictionary(
                self.entries(value, "zones.\(id)", allowed: ["residency", "countries"]).map { ($0.key, $0.value) },
                uniquingKeysWith: { a, _ in a })
            var residency = RegionMap.Residency.strict
            if let r = fields["residency"] {
                if let parsed = r.scalar.flatMap({ RegionMap.Residency(rawValue: $0.string) }) {
                    residency = parsed
                } else {
                    self.issue(r, "zones.\(id).residency", r.scalar?.string, "must be strict or preferred")
                }
            }
            var codes = Set<String>()
            for (code, node) in self.countries(fields["countries"] ?? nil, "zones.\(id).countries", owner: value) {
                if let other = zoneOfCountry[code], other != id {
                    self.issue(node, "zones.\(id).countries", code, "is already in zone '\(other)'")
                }
                zoneOfCountry[code] = id
                codes.insert(code)
                if residency == .strict { strictCountries.append((code, id, node)) }
            }
            zones.append(.init(id: id, countries: codes, residency: residency))
        }
        let zoneIDs = Dictionary(zones.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })

        // Regions.
        var regions: [RegionMap.Region] = []
        var regionOfCountry: [String: String] = [:]
        var neighbourRefs: [(String, Node, String)] = []
        if top["regions"] == nil { self.issue(root, "regions", nil, "is required") }
        let regionEntries = self.entries(top["regions"], "regions")
        let declaredRegions = Set(regionEntries.map(\.key))
        for (id, keyNode, value) in regionEntries {
            let path = "regions.\(id)"
            let fields = Dictionary(
                self.entries(value, path, allowed: ["zone", "countries", "centroid", "neighbours", "central"]).map {
                    ($0.key, $0.value)
                },
                uniquingKeysWith: { a, _ in a })
            guard let zoneNode = fields["zone"] else {
                self.issue(keyNode, "\(path).zone", nil, "is required: every region belongs to a zone")
                continue
            }
            guard let zoneID = self.string(zoneNode, "\(path).zone") else { continue }
            guard let zone = zoneIDs[zoneID] else {
                self.issue(zoneNode, "\(path).zone", zoneID, "no such zone")
                continue
            }
            var codes = Set<String>()
            for (code, node) in self.countries(fields["countries"] ?? nil, "\(path).countries", owner: value) {
                if let other = regionOfCountry[code], other != id {
                    self.issue(node, "\(path).countries", code, "is already in region '\(other)'")
                }
                if !zone.countries.contains(code) {
                    self.issue(node, "\(path).countries", code, "is not in the region's zone '\(zoneID)'")
                }
                regionOfCountry[code] = id
                codes.insert(code)
            }
            var centroid: (latitude: Double, longitude: Double)?
            if let c = fields["centroid"] {
                let cf = Dictionary(
                    self.entries(c, "\(path).centroid", allowed: ["lat", "lon"]).map { ($0.key, $0.value) },
                    uniquingKeysWith: { a, _ in a })
                if let lat = self.number(cf["lat"] ?? nil, "\(path).centroid.lat", range: -90...90),
                    let lon = self.number(cf["lon"] ?? nil, "\(path).centroid.lon", range: -180...180)
                {
                    centroid = (lat, lon)
                }
            }
            var neighbours: [String: Int] = [:]
            for (other, keyNode, rtt) in self.entries(fields["neighbours"] ?? nil, "\(path).neighbours") {
                if let ms = self.number(rtt, "\(path).neighbours.\(other)", range: 0...10_000) {
                    neighbours[other] = Int(ms)
                }
                neighbourRefs.append((other, keyNode, path))
            }
            // Documented once as "optional central capacity for this region", parsed, checked and never
            // used: an operator relying on it had no capacity and no error. Central capacity is
            // configured in one place, `central.endpoints`, whose zone checks cover it.
            if let list = fields["central"] {
                self.issue(
                    list, "\(path).central", nil,
                    "is not read: configure central capacity with central.endpoints (REGION=BASE_URL; docs/configuration.md)"
                )
            }
            let central: [RegionMap.CentralEndpoint] = []
            var region = RegionMap.Region(
                id: id, zone: zoneID, countries: codes, central: central, centroid: centroid, neighbours: neighbours)
            region.zoneLocation = zoneNode.mark.map { "\($0.line):\($0.column)" }
            regions.append(region)
        }
        // A strict zone's country in no region would follow `origins.unknown`, to whatever zone that names:
        // its clients' requests served outside their zone, which `strict` forbids. Checked on an otherwise
        // sound map only: a region refused above (no zone, say) would leave its countries in none.
        let sound = self.issues.isEmpty
        for (code, zone, node) in strictCountries where sound && regionOfCountry[code] == nil {
            self.issue(
                node, "zones.\(zone).countries", code,
                "is in strict zone '\(zone)' but in no region: its clients would follow origins.unknown, perhaps out of the zone; add it to a region of the zone"
            )
        }
        // References are checked against every declared region, so one broken region does not cascade.
        let regionIDs = declaredRegions
        for (other, node, path) in neighbourRefs where !regionIDs.contains(other) {
            self.issue(node, "\(path).neighbours", other, "no such region")
        }

        // Origin rules: each must name a region.
        let origins = Dictionary(
            self.entries(top["origins"], "origins", allowed: ["private", "unknown", "noDatabase"]).map {
                ($0.key, $0.value)
            },
            uniquingKeysWith: { a, _ in a })
        if top["origins"] == nil { self.issue(root, "origins", nil, "is required") }
        var rule: [String: String] = [:]
        for key in ["private", "unknown", "noDatabase"] {
            guard let node = origins[key] else {
                if top["origins"] != nil { self.issue(top["origins"], "origins.\(key)", nil, "is required") }
                continue
            }
            guard let region = self.string(node, "origins.\(key)") else { continue }
            guard regionIDs.contains(region) else {
                self.issue(node, "origins.\(key)", region, "no such region: the default would be unreachable")
                continue
            }
            rule[key] = region
        }
        guard self.issues.isEmpty, let p = rule["private"], let u = rule["unknown"], let n = rule["noDatabase"] else {
            return nil
        }
        return RegionMap(
            zones: zones, regions: regions, privateRegion: p, unknownRegion: u, noDatabaseRegion: n, version: version)
    }
}
