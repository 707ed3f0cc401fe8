import Foundation

/// Where a `preferred` zone's traffic goes when the zone has no capacity for it (docs/regions.md):
/// the other zones, nearest first. A `strict` zone never spills; the gateway asks this only for a
/// preferred one.
extension RegionMap {
    /// The zones other than `region`'s, nearest first: by the typical RTT the map lists from `region`
    /// to a region of that zone (`neighbours`), else by the great-circle distance between their
    /// centroids (1 ms of RTT a 100 km, light in fibre there and back), else last; ties by zone id.
    public func spillZones(from region: String) -> [String] {
        guard let origin = self.regions[region] else { return [] }
        var nearest: [String: Double] = [:]
        for candidate in self.regions.values where candidate.zone != origin.zone {
            let milliseconds = Self.milliseconds(from: origin, to: candidate)
            nearest[candidate.zone] = min(nearest[candidate.zone] ?? .infinity, milliseconds)
        }
        return nearest.keys.sorted { a, b in
            let (x, y) = (nearest[a]!, nearest[b]!)
            return x == y ? a < b : x < y
        }
    }

    static func milliseconds(from origin: Region, to other: Region) -> Double {
        if let rtt = origin.neighbours[other.id] ?? other.neighbours[origin.id] { return Double(rtt) }
        guard let a = origin.centroid, let b = other.centroid else { return .infinity }
        return Self.kilometres(a, b) / 100
    }

    /// The haversine distance on a sphere of the Earth's mean radius.
    static func kilometres(
        _ a: (latitude: Double, longitude: Double), _ b: (latitude: Double, longitude: Double)
    ) -> Double {
        let radians = Double.pi / 180
        let dLat = (b.latitude - a.latitude) * radians
        let dLon = (b.longitude - a.longitude) * radians
        let h =
            sin(dLat / 2) * sin(dLat / 2)
            + cos(a.latitude * radians) * cos(b.latitude * radians) * sin(dLon / 2) * sin(dLon / 2)
        return 2 * 6_371 * asin(min(1, h.squareRoot()))
    }
}
