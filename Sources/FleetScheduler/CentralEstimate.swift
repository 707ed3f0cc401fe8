import Foundation

/// What the gateway expects of central capacity, learned from outcomes as a car's rates are.
///
/// The configured figures are the prior: a fixed part of the time to first token (network,
/// admission), a prefill rate and a time per token. Every finished central attempt folds
/// observed ÷ expected into a learned slowdown (``LearnedRates``, the same estimator cars use),
/// so a central endpoint that queues or slows under load is predicted slower within a few
/// requests, and one faster than configured is predicted faster. The gateway's
/// `CentralDirectory` keeps one per endpoint; the simulator one per zone.
public struct CentralEstimate: Sendable, Hashable {
    /// Prior: time to first token of an empty prompt (network, admission), ms.
    public var baseTTFTMilliseconds: Double
    /// Prior: prompt tokens per second.
    public var prefillTokensPerSecond: Double
    /// Prior: time per output token, ms.
    public var tpotMilliseconds: Double
    /// Observed ÷ expected, learned.
    public private(set) var learned = LearnedRates()
    /// The least weight of a new observation.
    public var learningRate: Double
    /// Whether central's runtime caches prompt prefixes (configured): its options then carry the
    /// prefill time per token that prefix-cache affinity may subtract for a prefix it served.
    public var cachesPrefixes = false

    public init(
        baseTTFTMilliseconds: Double = 300, prefillTokensPerSecond: Double = 20_000, tpotMilliseconds: Double = 20,
        learningRate: Double = 0.25
    ) {
        self.baseTTFTMilliseconds = baseTTFTMilliseconds
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.tpotMilliseconds = tpotMilliseconds
        self.learningRate = learningRate
    }

    /// The configured expectation for a prompt, before learning, ms.
    func nominalTTFT(promptTokens: Int) -> Double {
        self.baseTTFTMilliseconds + 1_000 * Double(max(1, promptTokens)) / max(1, self.prefillTokensPerSecond)
    }

    /// Predicted time to first token and per output token for a prompt, ms.
    public func predict(promptTokens: Int) -> (ttft: Double, tpot: Double) {
        (
            self.nominalTTFT(promptTokens: promptTokens) * self.learned.prefillSlowdown,
            self.tpotMilliseconds * self.learned.decodeSlowdown
        )
    }

    /// The scheduler's view of central for a request.
    /// - Parameters:
    ///   - promptTokens: the request's estimated prompt tokens.
    ///   - hasRoom: whether central can take one more stream now.
    public func option(promptTokens: Int, hasRoom: Bool) -> CentralOption {
        let p = self.predict(promptTokens: promptTokens)
        var option = CentralOption(predictedTTFTMilliseconds: p.ttft, predictedTPOTMilliseconds: p.tpot, hasRoom: hasRoom)
        option.cachedPrefillMillisecondsPerToken = self.cachedPrefillMillisecondsPerToken
        return option
    }

    /// Prefill time per prompt token when central caches prefixes (0 when it does not), ms.
    public var cachedPrefillMillisecondsPerToken: Double {
        self.cachesPrefixes ? 1_000 / max(1, self.prefillTokensPerSecond) * self.learned.prefillSlowdown : 0
    }

    /// Learns from one finished central attempt. A failure before the first token counts as a
    /// first token four times later than expected, so a failing endpoint is predicted slow.
    /// - Parameters:
    ///   - outcome: what the attempt showed.
    ///   - promptTokens: the prompt the gateway estimated for it (when the outcome has no count).
    public mutating func observe(_ outcome: Outcome, promptTokens: Int) {
        let nominal = self.nominalTTFT(promptTokens: outcome.promptTokens ?? promptTokens)
        if let ttft = outcome.ttftMilliseconds {
            self.learned.observePrefill(ttft / nominal, learningRate: self.learningRate)
        } else if !outcome.succeeded {
            self.learned.observePrefill(4, learningRate: self.learningRate)
        }
        if let tpot = outcome.tpotMilliseconds, outcome.outputTokens >= 2 {
            self.learned.observeDecode(tpot / max(0.1, self.tpotMilliseconds), learningRate: self.learningRate)
        }
    }
}
