/// Privacy zones and regions (DESIGN.md, Contracts: zones are explicit ISO country lists).
///
/// Issue 4 loads this from `Regions/*.yaml` with line-precise validation; until then the
/// default map is built in code and mirrors what `Regions/default.yaml` will ship.
public struct RegionMap: Sendable, Hashable {
    /// How strictly a zone keeps its traffic.
    public enum Residency: String, Sendable, Hashable, Codable {
        /// Never served outside the zone: an error instead.
        case strict
        /// Served outside only when the zone has no capacity.
        case preferred
    }

    public struct Zone: Sendable, Hashable {
        public var id: String
        public var countries: Set<String>
        public var residency: Residency
        public init(id: String, countries: Set<String>, residency: Residency) {
            self.id = id
            self.countries = countries
            self.residency = residency
        }
    }

    /// A central OpenAI-compatible endpoint serving a region.
    public struct CentralEndpoint: Sendable, Hashable {
        public var url: String
        public var models: [String]
        public init(url: String, models: [String]) {
            self.url = url
            self.models = models
        }
    }

    public struct Region: Sendable, Hashable {
        public var id: String
        public var zone: String
        public var countries: Set<String>
        public var central: [CentralEndpoint]
        /// Latitude and longitude of the region's centre (distance estimates).
        public var centroid: (latitude: Double, longitude: Double)?
        /// Neighbouring regions and their typical RTT in milliseconds.
        public var neighbours: [String: Int]
        /// Where the map file names the region's zone (`line:column`), for errors about it; nil for a map
        /// built in code. Not part of the region's value (``==``).
        public var zoneLocation: String?

        public init(
            id: String, zone: String, countries: Set<String>, central: [CentralEndpoint] = [],
            centroid: (latitude: Double, longitude: Double)? = nil, neighbours: [String: Int] = [:]
        ) {
            self.id = id
            self.zone = zone
            self.countries = countries
            self.central = central
            self.centroid = centroid
            self.neighbours = neighbours
        }

        public static func == (a: Region, b: Region) -> Bool {
            a.id == b.id && a.zone == b.zone && a.countries == b.countries && a.central == b.central
                && a.centroid?.latitude == b.centroid?.latitude && a.centroid?.longitude == b.centroid?.longitude
                && a.neighbours == b.neighbours
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(self.id)
            hasher.combine(self.zone)
        }
    }

    public var zones: [String: Zone]
    public var regions: [String: Region]
    /// Region for private/loopback origins (development and tests).
    public var privateRegion: String
    /// Region for public addresses the database does not know; default: the strictest zone's first region.
    public var unknownRegion: String
    /// Region when no database is loaded.
    public var noDatabaseRegion: String
    /// A version string shown by the admin API.
    public var version: String
    private var countryToRegion: [String: String]

    public init(
        zones: [Zone], regions: [Region], privateRegion: String, unknownRegion: String, noDatabaseRegion: String,
        version: String
    ) {
        self.zones = Dictionary(uniqueKeysWithValues: zones.map { ($0.id, $0) })
        self.regions = Dictionary(uniqueKeysWithValues: regions.map { ($0.id, $0) })
        self.privateRegion = privateRegion
        self.unknownRegion = unknownRegion
        self.noDatabaseRegion = noDatabaseRegion
        self.version = version
        var index: [String: String] = [:]
        for region in regions { for country in region.countries { index[country] = region.id } }
        self.countryToRegion = index
    }

    /// The region serving a country, if any.
    public func region(forCountry iso: String) -> Region? {
        self.countryToRegion[iso.uppercased()].flatMap { self.regions[$0] }
    }

    /// The zone of a region id.
    public func zone(ofRegion id: String) -> Zone? {
        self.regions[id].flatMap { self.zones[$0.zone] }
    }

    /// The EEA: the 27 EU states plus Iceland, Liechtenstein and Norway. `EU` is the pseudo-code some databases use.
    public static let eea: Set<String> = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
        "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "EU",
    ]
}
