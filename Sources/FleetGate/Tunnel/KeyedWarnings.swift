import Synchronization

/// Which of a repeated warning are logged: at most one a minute per key. Two agents run with one
/// vehicle id replace each other's tunnel several times a second, and a misconfigured car is refused
/// at every dial; each leaves a line an operator sees, not a flood (the rest are debug lines; takeovers
/// are all counted in `fleet_car_takeovers_total`, refusals of identity in `fleet_car_refused_total`).
final class KeyedWarnings: Sendable {
    /// Seconds between two warnings with one key.
    static let interval = 60.0
    /// Keys remembered; past it the memory starts again (a flood of keys is itself visible).
    static let capacity = 10_000

    private let last = Mutex<[String: Double]>([:])

    /// Whether an event with `key` at `now` (seconds, monotonic) is warned about.
    func shouldWarn(_ key: String, now: Double) -> Bool {
        self.last.withLock { last in
            if let at = last[key], now - at < Self.interval { return false }
            if last.count >= Self.capacity { last.removeAll(keepingCapacity: true) }
            last[key] = now
            return true
        }
    }
}
