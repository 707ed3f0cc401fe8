import Synchronization

/// Which takeovers of a car's open tunnel are worth a warning: at most one a minute per vehicle id,
/// so two agents run with one id — which replace each other's tunnel several times a second — leave
/// a line an operator sees, not a flood. Every takeover is counted (`fleet_car_takeovers_total`).
final class TakeoverWarnings: Sendable {
    /// Seconds between two warnings about one vehicle id.
    static let interval = 60.0
    /// Vehicle ids remembered; past it the memory starts again (a flood of ids is itself visible).
    static let capacity = 10_000

    private let last = Mutex<[String: Double]>([:])

    /// Whether a takeover by `vehicleID` at `now` (seconds, monotonic) is warned about.
    func shouldWarn(_ vehicleID: String, now: Double) -> Bool {
        self.last.withLock { last in
            if let at = last[vehicleID], now - at < Self.interval { return false }
            if last.count >= Self.capacity { last.removeAll(keepingCapacity: true) }
            last[vehicleID] = now
            return true
        }
    }
}
