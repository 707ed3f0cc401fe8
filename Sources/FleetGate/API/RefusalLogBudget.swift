import Synchronization

/// How many head refusals (401, 404, 405) get their own `Request served` line: a burst of
/// ``burst``, then ``perSecond`` a second for the whole gateway. Past it a refusal is counted, and
/// the next line written says how many went unlogged (`fleet.unlogged`). Anyone can send requests
/// without a key at line rate, and a line is a write to the log under a lock every loop shares
/// (helper-98): the log must not become the cheapest way to slow the gateway down.
final class RefusalLogBudget: Sendable {
    static let burst = 200.0
    static let perSecond = 50.0

    private let state: Mutex<(bucket: TokenBucket, unlogged: Int)>

    init(now: Double) {
        self.state = Mutex((TokenBucket(capacity: Self.burst, rate: Self.perSecond, now: now), 0))
    }

    /// Whether a refusal at `now` gets its line; when it does, how many before it did not.
    func take(now: Double) -> (log: Bool, unlogged: Int) {
        self.state.withLock { state in
            guard state.bucket.take(1, now: now) == nil else {
                state.unlogged += 1
                return (false, 0)
            }
            defer { state.unlogged = 0 }
            return (true, state.unlogged)
        }
    }
}
