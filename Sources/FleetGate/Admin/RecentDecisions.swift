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
    private let entries = Mutex<[Entry]>([])

    public init() {}

    /// Records a finished request; the oldest entry goes when full.
    public func record(_ entry: Entry) {
        self.entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeFirst(entries.count - Self.capacity + 1) }
            entries.append(entry)
        }
    }

    /// The entries, newest first.
    public var latest: [Entry] { self.entries.withLock { $0.reversed() } }

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
