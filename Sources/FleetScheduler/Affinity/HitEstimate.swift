/// The chance that a car's runtime still holds a prefix the gateway believes it holds, learned
/// from outcomes (issue #14).
///
/// Each job sent to a car for a prefix it held is classified from its observed prefill time: a
/// hit when it is nearer the time for the uncached rest than for the whole prompt (both at the
/// car's learned slowdown), a miss otherwise. The mean starts at the prior (counted as one
/// observation), is averaged at first, then weighted at least the learning rate, so a car whose
/// "hits" are not faster (its runtime keeps no cache, or evicts at once) drifts to no credit.
public struct HitEstimate: Sendable, Hashable {
    public var probability: Double
    public var observations: Int = 0

    public init(prior: Double) {
        self.probability = prior
    }

    mutating func observe(hit: Bool, learningRate: Double) {
        self.observations += 1
        let weight = max(1 / Double(self.observations + 1), learningRate)
        self.probability += weight * ((hit ? 1 : 0) - self.probability)
    }
}
