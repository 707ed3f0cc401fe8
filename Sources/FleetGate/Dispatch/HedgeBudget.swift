import Synchronization

/// Bounds hedging to a share of requests, gateway-wide, over a sliding window: gRPC's retry
/// throttling shape. Every request deposits `ratio` of a token (up to ``capacity``); a hedge
/// withdraws a whole one. So at most `ratio` extra attempts per request are spent on hedges over
/// any long window, and a burst of slow first tokens cannot double the fleet's load.
final class HedgeBudget: Sendable {
    /// Tokens kept at most: how many hedges a quiet period can save up for.
    let capacity: Double
    let ratio: Double
    private let tokens: Mutex<Double>

    init(ratio: Double, capacity: Double = 10) {
        self.ratio = max(0, ratio)
        self.capacity = capacity
        self.tokens = Mutex(0)
    }

    /// A request arrived.
    func deposit() {
        self.tokens.withLock { $0 = min(self.capacity, $0 + self.ratio) }
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
