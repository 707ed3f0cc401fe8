/// A token bucket: holds up to ``capacity`` tokens and refills at ``rate`` per second.
///
/// Pure: the caller passes the time (seconds on any monotonic clock), so tests need no sleeps.
package struct TokenBucket: Sendable, Equatable {
    package private(set) var capacity: Double
    package private(set) var rate: Double
    /// Tokens in the bucket now; negative after a ``charge(_:now:)`` beyond what it held.
    package private(set) var level: Double
    private var stamp: Double

    package init(capacity: Double, rate: Double, now: Double) {
        self.capacity = max(0, capacity)
        self.rate = max(0, rate)
        self.level = self.capacity
        self.stamp = now
    }

    private mutating func refill(now: Double) {
        guard now > self.stamp else { return }
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
    }

    /// Takes `amount` tokens when the bucket holds them.
    /// - Returns: nil when taken; otherwise the seconds until they would be there.
    package mutating func take(_ amount: Double, now: Double) -> Double? {
        self.refill(now: now)
        if self.level >= amount {
            self.level -= amount
            return nil
        }
        return self.rate > 0 ? (amount - self.level) / self.rate : .infinity
    }

    /// Seconds until the bucket holds something (0 when it does now).
    package mutating func waitUntilPositive(now: Double) -> Double? {
        self.refill(now: now)
        if self.level > 0 { return nil }
        return self.rate > 0 ? (-self.level + 1e-9) / self.rate : .infinity
    }

    /// Debits a cost known only afterwards (a request's tokens); the level may go negative.
    package mutating func charge(_ amount: Double, now: Double) {
        self.refill(now: now)
        self.level -= amount
    }

    /// New limits for a reloaded policy; the level is kept, clamped to the new capacity.
    package mutating func reconfigure(capacity: Double, rate: Double, now: Double) {
        self.refill(now: now)
        self.capacity = max(0, capacity)
        self.rate = max(0, rate)
        self.level = min(self.level, self.capacity)
    }
}
