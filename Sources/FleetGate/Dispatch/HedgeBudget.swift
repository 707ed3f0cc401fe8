import Synchronization

/// Bounds hedging to a share of requests, gateway-wide, over a sliding window: gRPC's retry
/// throttling shape. Every request deposits `ratio` of a token (up to ``capacity``); a hedge
/// withdraws a whole one. So at most `ratio` extra attempts per request are spent on hedges over
/// any long window, and a burst of slow first tokens cannot double the fleet's load.
///
/// It starts full, as gRPC's does: a gateway that has just started knows its cars only by what they
/// advertise, which is when a car slower than it claims is most likely picked, and an empty budget
/// left its first requests to wait for it (20 requests at the default ratio before the first hedge;
/// a car with a 1 s first token took 9 of a new gateway's first 30 requests at 1 s each).
final class HedgeBudget: Sendable {
    /// Tokens kept at most: how many hedges a quiet period can save up for.
    let capacity: Double
    let ratio: Double
    private let tokens: Mutex<Double>

    init(ratio: Double, capacity: Double = 10) {
        self.ratio = max(0, ratio)
        self.capacity = capacity
        self.tokens = Mutex(ratio > 0 ? capacity : 0)  // a ratio of 0 turns hedging off
    }

    /// A request was admitted (its key too: refused requests do not fill the budget).
    func deposit() {
        self.tokens.withLock { $0 = min(self.capacity, $0 + self.ratio) }
    }

    /// Gives back a token a hedge took but could not use (it found no candidate).
    func refund() {
        self.tokens.withLock { $0 = min(self.capacity, $0 + 1) }
    }

    /// Takes one hedge's worth; false when the budget is spent.
    func tryWithdraw() -> Bool {
        self.tokens.withLock { tokens in
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
    }
}
