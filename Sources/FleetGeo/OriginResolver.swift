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
    /// Whether the zone is `preferred` (docs/regions.md): served elsewhere when it has nothing for a
    /// request's model. False for `strict`.
    public var spills = false

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
    public var map: RegionMap {
        didSet { self.preferredZones = Self.preferredZones(of: self.map) }
    }
    public var lookup: (any CountryLookup)?
    /// The map's `preferred` zones, for ``Origin/spills``: a set made once, not a lookup of the zone
    /// a request (every request's origin is resolved; issue #19).
    private var preferredZones: Set<String>

    public init(map: RegionMap, lookup: (any CountryLookup)?) {
        self.map = map
        self.lookup = lookup
        self.preferredZones = Self.preferredZones(of: map)
    }

    private static func preferredZones(of map: RegionMap) -> Set<String> {
        Set(map.zones.values.filter { $0.residency == .preferred }.map(\.id))
    }

    private func marked(_ origin: Origin) -> Origin {
        guard !self.preferredZones.isEmpty, self.preferredZones.contains(origin.zone) else { return origin }
        var origin = origin
        origin.spills = true
        return origin
    }

    /// Resolves a client address as ``ClientAddressResolver`` found it: a peer follows the
    /// `private` rule when it is private; a forwarded private address, or an unusable forwarded
    /// hop, follows the `unknown` rule (a proxy on the public side never sees a private client, so
    /// such a value is a forgery or a misconfiguration, and the strictest zone is the safe answer).
    public func resolve(_ client: ClientAddress) -> Origin {
        switch client {
        case .peer(let address):
            return self.resolve(address)
        case .forwarded(let address) where !address.isPrivateOrLocal:
            return self.resolve(address)
        case .forwarded, .unusable:
            return self.unknown
        }
    }

    /// Resolves an address (nil: unknown transport, treated as private, e.g. a Unix socket).
    ///
    /// A transition address (6to4, Teredo, NAT64's well-known prefix, IPv4-compatible) is looked
    /// up by the public IPv4 address it carries; one whose embedded address is not public, or
    /// whose mechanism hides it (NAT64 local use), follows the `unknown` rule.
    public func resolve(_ address: IPAddress?) -> Origin {
        guard var address, !address.isPrivateOrLocal else {
            return self.origin(region: self.map.privateRegion, rule: .private)
        }
        if address.transition != nil {
            guard let embedded = address.embeddedIPv4, !embedded.isPrivateOrLocal else { return self.unknown }
            address = embedded
        }
        guard let lookup = self.lookup else { return self.origin(region: self.map.noDatabaseRegion, rule: .noDatabase) }
        guard let country = lookup.country(of: address), let region = self.map.region(forCountry: country) else {
            return self.unknown
        }
        return self.marked(Origin(country: country, region: region.id, zone: region.zone, rule: .database))
    }

    private var unknown: Origin { self.origin(region: self.map.unknownRegion, rule: .unknown) }

    private func origin(region: String, rule: Origin.Rule) -> Origin {
        self.marked(Origin(country: nil, region: region, zone: self.map.regions[region]?.zone ?? "unknown", rule: rule))
    }
}
