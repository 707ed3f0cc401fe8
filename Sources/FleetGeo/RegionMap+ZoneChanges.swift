extension RegionMap {
    /// A region in both maps whose zone differs.
    public struct ZoneChange: Sendable, Hashable, CustomStringConvertible {
        public var region: String
        public var from: String
        public var to: String
        public init(region: String, from: String, to: String) {
            self.region = region
            self.from = from
            self.to = to
        }
        public var description: String { "region '\(self.region)' moves from zone '\(self.from)' to zone '\(self.to)'" }
    }

    /// The regions of this (running) map that `next` puts in another zone, by region id.
    ///
    /// Cars and central endpoints take their region's zone when they join; a map swapped under them
    /// would leave them serving the old zone's traffic in a region the new map puts outside it (an
    /// EU car keeps EU requests after its region moved to `us`). The reload refuses such a map: a zone
    /// change is a restart.
    public func zoneChanges(to next: RegionMap) -> [ZoneChange] {
        self.regions.values.compactMap { region in
            guard let moved = next.regions[region.id], moved.zone != region.zone else { return nil }
            return ZoneChange(region: region.id, from: region.zone, to: moved.zone)
        }.sorted { $0.region < $1.region }
    }
}
