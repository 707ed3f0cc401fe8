extension RegionMap {
    /// The default map: EEA strict, GB and CH strict zones of their own, US, APAC and the rest.
    public static let `default`: RegionMap = {
        let zones: [Zone] = [
            Zone(id: "eu", countries: RegionMap.eea, residency: .strict),
            Zone(id: "gb", countries: ["GB", "GG", "JE", "IM"], residency: .strict),
            Zone(id: "ch", countries: ["CH"], residency: .strict),
            Zone(id: "us", countries: ["US", "CA", "PR", "MX"], residency: .preferred),
            Zone(id: "apac", countries: ["JP", "KR", "TW", "SG", "AU", "NZ", "IN", "PH", "BT", "CN", "HK"], residency: .preferred),
        ]
        let regions: [Region] = [
            Region(id: "eu-west", zone: "eu", countries: ["FR", "ES", "PT", "IE", "BE", "NL", "LU", "IT", "MT", "EU"]),
            Region(id: "eu-central", zone: "eu", countries: ["DE", "AT", "PL", "CZ", "SK", "HU", "SI", "HR", "RO", "BG", "GR", "CY", "LI"]),
            Region(id: "eu-north", zone: "eu", countries: ["SE", "FI", "DK", "NO", "IS", "EE", "LV", "LT"]),
            Region(id: "gb", zone: "gb", countries: ["GB", "GG", "JE", "IM"]),
            Region(id: "ch", zone: "ch", countries: ["CH"]),
            Region(id: "us-east", zone: "us", countries: ["US", "CA", "PR"]),
            Region(id: "us-west", zone: "us", countries: ["MX"]),
            Region(id: "ap-northeast", zone: "apac", countries: ["JP", "KR", "TW", "CN", "HK"]),
            Region(id: "ap-southeast", zone: "apac", countries: ["SG", "AU", "NZ", "IN", "PH", "BT"]),
        ]
        return RegionMap(zones: zones, regions: regions, privateRegion: "eu-central", unknownRegion: "eu-central",
                         noDatabaseRegion: "eu-central", version: "builtin-1")
    }()
}
