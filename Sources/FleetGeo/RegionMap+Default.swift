extension RegionMap {
    /// The default map: EEA strict, GB and CH strict zones of their own, US and APAC. The same as
    /// `Regions/default.yaml` (a test keeps the two identical), built in so the binary runs without files.
    public static let `default`: RegionMap = {
        let zones: [Zone] = [
            Zone(id: "eu", countries: RegionMap.eea, residency: .strict),
            Zone(id: "gb", countries: ["GB", "GG", "JE", "IM"], residency: .strict),
            Zone(id: "ch", countries: ["CH"], residency: .strict),
            Zone(id: "us", countries: ["US", "CA", "PR", "MX"], residency: .preferred),
            Zone(
                id: "apac", countries: ["JP", "KR", "TW", "SG", "AU", "NZ", "IN", "PH", "BT", "CN", "HK"],
                residency: .preferred),
        ]
        let regions: [Region] = [
            Region(
                id: "eu-west", zone: "eu", countries: ["FR", "ES", "PT", "IE", "BE", "NL", "LU", "IT", "MT", "EU"],
                centroid: (48.86, 2.35), neighbours: ["eu-central": 12, "gb": 10, "eu-north": 25]),
            Region(
                id: "eu-central", zone: "eu",
                countries: ["DE", "AT", "PL", "CZ", "SK", "HU", "SI", "HR", "RO", "BG", "GR", "CY", "LI"],
                centroid: (50.11, 8.68), neighbours: ["eu-west": 12, "eu-north": 20, "ch": 8]),
            Region(
                id: "eu-north", zone: "eu", countries: ["SE", "FI", "DK", "NO", "IS", "EE", "LV", "LT"],
                centroid: (59.33, 18.07), neighbours: ["eu-central": 20, "eu-west": 25]),
            Region(
                id: "gb", zone: "gb", countries: ["GB", "GG", "JE", "IM"], centroid: (51.51, -0.13),
                neighbours: ["eu-west": 10]),
            Region(id: "ch", zone: "ch", countries: ["CH"], centroid: (47.38, 8.54), neighbours: ["eu-central": 8]),
            Region(
                id: "us-east", zone: "us", countries: ["US", "CA", "PR"], centroid: (39.04, -77.49),
                neighbours: ["us-west": 65]),
            Region(
                id: "us-west", zone: "us", countries: ["MX"], centroid: (37.34, -121.89), neighbours: ["us-east": 65]),
            Region(
                id: "ap-northeast", zone: "apac", countries: ["JP", "KR", "TW", "CN", "HK"], centroid: (35.68, 139.69),
                neighbours: ["ap-southeast": 70]),
            Region(
                id: "ap-southeast", zone: "apac", countries: ["SG", "AU", "NZ", "IN", "PH", "BT"],
                centroid: (1.35, 103.82),
                neighbours: ["ap-northeast": 70]),
        ]
        return RegionMap(
            zones: zones, regions: regions, privateRegion: "eu-central", unknownRegion: "eu-central",
            noDatabaseRegion: "eu-central", version: "default-2026-11")
    }()
}
