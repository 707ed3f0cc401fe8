import Foundation
import Synchronization

/// The last routing decisions, for the dashboard: where each request went and why — ids, zones,
/// regions and counts only, never prompt or completion text. Bounded (``capacity``).
public final class RecentDecisions: Sendable {
    /// One finished request.
    public struct Entry: Sendable, Encodable, Hashable {
        public var time: Double
        public var requestID: String
        public var status: Int
        public var originRegion: String
        public var zone: String
        public var route: String
        public var region: String
        public var vehicle: String
        public var attempts: Int
        public var migrations: Int
        public var tokens: Int
        /// Why it went where it went, in words.
        public var reason: String
    }

    /// Entries kept.
    public static let capacity = 100
    /// A ring: `next` is where the next entry goes (and, once full, the oldest entry).
    private let ring = Mutex<(entries: [Entry], next: Int)>(([], 0))

    public init() {}

    /// Records a finished request; the oldest entry goes when full. O(1): a request's audit must
    /// not shift the other 99 entries.
    public func record(_ entry: Entry) {
        self.ring.withLock { ring in
            if ring.entries.count < Self.capacity {
                ring.entries.append(entry)
            } else {
                ring.entries[ring.next] = entry
            }
            ring.next = (ring.next + 1) % Self.capacity
        }
    }

    /// The entries, newest first.
    public var latest: [Entry] {
        self.ring.withLock { ring in
            guard ring.entries.count == Self.capacity else { return ring.entries.reversed() }
            return Array(ring.entries[..<ring.next].reversed()) + Array(ring.entries[ring.next...].reversed())
        }
    }

    /// The reason shown for a request's outcome.
    static func reason(status: Int, route: String, attempts: Int, migrations: Int) -> String {
        switch (status, route) {
        case (200, "car") where migrations > 0: return "car, continued after \(migrations) mid-stream move(s)"
        case (200, "car") where attempts > 1: return "car after \(attempts) attempts (retry or hedge)"
        case (200, "car"): return "car predicted fastest in zone"
        case (200, "central"): return "central: no car in zone predicted to meet the objective"
        case (200, "replica"): return "another replica: its digest promised a faster car, or none here"
        case (503, _): return "refused: no capacity in zone"
        case (499, _): return "client went away"
        default: return "error \(status)"
        }
    }
}
