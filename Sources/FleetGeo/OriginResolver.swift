/// Where a request comes from: its country (when known), region and privacy zone.
public struct Origin: Sendable, Hashable {
    /// Which rule decided the region.
    public enum Rule: String, Sendable, Hashable {
        case database, unknown, `private`, noDatabase
    }

    public var country: String?
    public var region: String
    public var zone: String
    public var rule: Rule

    public init(country: String?, region: String, zone: String, rule: Rule) {
        self.country = country
        self.region = region
        self.zone = zone
        self.rule = rule
    }
}

/// Looks up a country for an address. Issue 4 adds the MaxMind implementation.
public protocol CountryLookup: Sendable {
    /// The ISO country code of `address`, or nil when the database has no entry.
    func country(of address: IPAddress) -> String?
}

/// Maps client addresses to origins with a ``RegionMap`` and an optional ``CountryLookup``.
public struct OriginResolver: Sendable {
    public var map: RegionMap
    public var lookup: (any CountryLookup)?

    public init(map: RegionMap, lookup: (any CountryLookup)?) {
        self.map = map
        self.lookup = lookup
    }

    /// Resolves an address (nil: unknown transport, treated as private, e.g. a Unix socket).
    public func resolve(_ address: IPAddress?) -> Origin {
        guard let address, !address.isPrivateOrLocal else {
            return self.origin(region: self.map.privateRegion, rule: .private)
        }
        guard let lookup = self.lookup else { return self.origin(region: self.map.noDatabaseRegion, rule: .noDatabase) }
        guard let country = lookup.country(of: address), let region = self.map.region(forCountry: country) else {
            return self.origin(region: self.map.unknownRegion, rule: .unknown)
        }
        return Origin(country: country, region: region.id, zone: region.zone, rule: .database)
    }

    private func origin(region: String, rule: Origin.Rule) -> Origin {
        Origin(country: nil, region: region, zone: self.map.regions[region]?.zone ?? "unknown", rule: rule)
    }
}
