import FleetProtocol
import Foundation

/// What the gateway has learned about one car running one model: how much slower (or faster)
/// than advertised its prefill and decode really are, as seen end to end.
///
/// Kept as the mean of log(observed ÷ advertised), so a car twice as slow and one twice as fast
/// are equally far from 1. The first observations are averaged; later ones are weighted at least
/// ``LatencyPredictor/learningRate`` so a slowdown that changes (heat, an owner in the cabin) is
/// followed within a few jobs.
public struct LearnedRates: Sendable, Hashable {
    public var prefillLogSlowdown: Double = 0
    public var decodeLogSlowdown: Double = 0
    public var prefillObservations: Int = 0
    public var decodeObservations: Int = 0

    /// Prefill time ÷ advertised prefill time.
    public var prefillSlowdown: Double { exp(self.prefillLogSlowdown) }
    /// Time per token ÷ advertised time per token.
    public var decodeSlowdown: Double { exp(self.decodeLogSlowdown) }

    mutating func observePrefill(_ ratio: Double, learningRate: Double) {
        Self.fold(&self.prefillLogSlowdown, &self.prefillObservations, ratio, learningRate)
    }

    mutating func observeDecode(_ ratio: Double, learningRate: Double) {
        Self.fold(&self.decodeLogSlowdown, &self.decodeObservations, ratio, learningRate)
    }

    private static func fold(_ mean: inout Double, _ count: inout Int, _ ratio: Double, _ rate: Double) {
        guard ratio.isFinite, ratio > 0 else { return }
        // Clamp single observations to 1/64×…512×. Advertised rates are bounded by the hardware
        // class (`FleetRegistry.boundedRates`), so this range holds any real car and observation
        // replaces what a car claims; one stalled stream weighs at most `learningRate` of it.
        let x = min(log(512), max(log(1.0 / 64), log(ratio)))
        count += 1
        // The prior counts as one observation at 0 (the advertised rate).
        let weight = max(1 / Double(count + 1), rate)
        mean += weight * (x - mean)
    }
}

/// Smoothed round-trip time and its mean deviation (RFC 6298's SRTT and RTTVAR).
struct RTTEstimate: Hashable {
    var smoothed: Double = 0
    var deviation: Double = 0
    var samples: Int = 0

    mutating func observe(_ sample: Double) {
        guard sample.isFinite, sample >= 0 else { return }
        if self.samples == 0 {
            self.smoothed = sample
            self.deviation = sample / 2
        } else {
            self.deviation = 0.75 * self.deviation + 0.25 * abs(self.smoothed - sample)
            self.smoothed = 0.875 * self.smoothed + 0.125 * sample
        }
        self.samples += 1
    }
}

/// Finagle's peak EWMA: jumps up to a worse sample at once, decays towards better ones with time
/// constant τ. Used by `p2c-peak-ewma` over observed time to first token.
struct PeakEWMA: Hashable {
    var cost: Double = 0
    var stamp: Double = 0

    mutating func observe(_ sample: Double, now: Double, tau: Double = 10) {
        if sample > self.cost {
            self.cost = sample
        } else {
            let w = exp(-max(0, now - self.stamp) / tau)
            self.cost = self.cost * w + sample * (1 - w)
        }
        self.stamp = now
    }
}

/// The latency predictor (DESIGN.md step 3): what a job would see on a car.
///
/// - Time to first token = RTT + queue wait + prompt tokens ÷ prefill rate.
/// - Time per output token = 1 ÷ the decode rate of one stream at the car's concurrency with
///   this job added, from its hardware class's curve (``HardwareProfile/decodeRate(activeStreams:)``)
///   scaled to the rate the car advertises.
/// - Both compute terms are multiplied by the car's learned slowdown; a car with few
///   observations is charged its uncertainty (``riskAversion`` × σ, σ shrinking as 1/√(n+1)).
/// - A car whose departure is unknown may leave mid-job at the fleet's observed churn hazard;
///   the probability it does, times the work lost (a new first token plus half the generation),
///   is added as an expected cost. An announced departure before the job ends is a filter, not a cost.
public struct LatencyPredictor: Sendable {
    /// Spread (σ of log slowdown) assumed for a car never observed; FLEET.md's hidden slowdowns
    /// span 1–4×, so σ ≈ ln(4)/2.
    public var priorLogSigma: Double = 0.7
    /// How many σ of doubt a car is charged.
    public var riskAversion: Double = 0.5
    /// The least weight of a new observation (tracks slowdowns that change every few minutes).
    public var learningRate: Double = 0.25
    /// Penalty, ms, for a car predicted to miss the request's time-per-token objective.
    public var tpotMissPenaltyMilliseconds: Double = 2_000
    /// RTT assumed before the first PING, ms (a cellular link, FLEET.md).
    public var defaultRTTMilliseconds: Double = 55
    /// Whether outcomes teach the predictor (off: the advertised rates only — an ablation).
    public var learns = true
    /// Weight of the predicted time per token in the score (ms of TTFT per ms of TPOT).
    public var decodeWeight: Double = 2
    /// Prefill slows by this share per stream already running on the car (they share the chip).
    public var prefillContention: Double = 0
    /// Best fit: when > 0, a car predicted to meet the TTFT objective within this share of it is
    /// preferred to any that is not, and among those the one with the most time to spare is not
    /// preferred — the slowest that fits is — so fast cars stay free for requests only they can meet.
    /// 0.9: tuned on the simulator's tuning set (LoadTests/README.md), never on the held-out set.
    public var fitMargin: Double = 0.9
    /// Whether `predictive` may also put central first by its own prediction (on top of the
    /// shared spill rule every policy follows). Off: predictive then uses no more central than
    /// the shared rule gives any policy, and on the tuning set it met more objectives without it.
    public var centralByPrediction = false
    /// Prefix-cache affinity: ms of score per ms of prefill a held prefix is expected to save,
    /// among cars that fit the objective (issue #14).
    public var prefixCreditWeight: Double = 1

    public init() {}

    struct Prediction {
        var ttft: Double
        var tpot: Double
        var rtt: Double
        var queue: Double
        var score: Double
        var jobSeconds: Double
        /// RTT + queue + prompt ÷ advertised prefill: no learning, no doubt (the shared spill rule).
        var advertisedTTFT: Double
        /// Prompt tokens the car holds of the request (prefix-cache affinity), and the prefill
        /// time subtracted for them, ms (already out of `ttft` and `advertisedTTFT`).
        var cachedTokens = 0
        var prefixCredit = 0.0
    }

    /// - Parameters:
    ///   - cachedTokens: prompt tokens of the request's longest prefix the car held (affinity).
    ///   - hitProbability: the chance its runtime still holds them (``HitEstimate``).
    func predict(
        _ car: FleetRegistry.Car, offer: FleetRegistry.Offer, request: RequestProfile, churnHazard: Double, now: Double,
        cachedTokens: Int = 0, hitProbability: Double = 0
    ) -> Prediction {
        let learned = offer.learned
        let rtt = car.rtt.samples > 0 ? car.rtt.smoothed + car.rtt.deviation : self.defaultRTTMilliseconds
        let prefillDoubt = self.riskAversion * self.priorLogSigma / Double(learned.prefillObservations + 1).squareRoot()
        let decodeDoubt = self.riskAversion * self.priorLogSigma / Double(learned.decodeObservations + 1).squareRoot()
        let sharing = 1 + self.prefillContention * Double(min(Int(car.inFlight), car.slots))
        var prefillMs =
            1_000 * Double(max(1, request.promptTokens)) / max(1, offer.prefillTokensPerSecond)
            * exp(learned.prefillLogSlowdown + prefillDoubt) * sharing
        // Prefix-cache affinity: the held prefix is not prefilled again, if the runtime kept it.
        let cached = min(cachedTokens, max(0, request.promptTokens - 1))
        let creditShare = cached > 0 ? hitProbability * Double(cached) / Double(max(1, request.promptTokens)) : 0
        let credit = prefillMs * creditShare
        prefillMs -= credit
        let streams = Int(car.inFlight) + 1
        let decodeRate = offer.decodeRate(activeStreams: min(streams, car.slots), hardware: car.hardware)
        let tpot = 1_000 / max(0.1, decodeRate) * exp(learned.decodeLogSlowdown + decodeDoubt)
        let serviceSeconds = (prefillMs + tpot * Double(request.expectedOutputTokens)) / 1_000
        // Queue wait: jobs ahead of this one beyond the slots, each taking a slot's share of a typical job.
        let ahead = Int(car.inFlight) - car.slots + 1
        let typicalJob = car.meanJobSeconds > 0 ? car.meanJobSeconds : serviceSeconds
        let queue = ahead > 0 ? 1_000 * Double(ahead) * typicalJob / Double(car.slots) : 0
        let ttft = rtt + queue + prefillMs
        let jobSeconds = (ttft + tpot * Double(request.expectedOutputTokens)) / 1_000
        var score = ttft + self.decodeWeight * tpot
        if tpot > request.tpotObjectiveMilliseconds { score += self.tpotMissPenaltyMilliseconds }
        if self.fitMargin > 0 {
            let limit = self.fitMargin * request.ttftObjectiveMilliseconds
            // Fits: ranked by time to spare (least first), all below any car that does not fit.
            // A held prefix makes a car fit sooner, but its credit is work saved, not spare speed:
            // the time to spare is the car's without it, and the credit then lowers the score
            // (× ``prefixCreditWeight``), so best fit does not push a conversation off its car.
            let spare = limit - (ttft + credit)
            score = ttft <= limit ? spare + score - ttft - self.prefixCreditWeight * credit : 1_000_000 + score
        }
        if car.departsAt == .infinity, churnHazard > 0 {
            let leaves = 1 - exp(-churnHazard * jobSeconds)
            score += leaves * (ttft + 500 * jobSeconds)
        }
        let advertisedTTFT =
            rtt + queue + 1_000 * Double(max(1, request.promptTokens)) / max(1, offer.prefillTokensPerSecond)
            * (1 - creditShare)
        return Prediction(
            ttft: ttft, tpot: tpot, rtt: rtt, queue: queue, score: score, jobSeconds: jobSeconds,
            advertisedTTFT: advertisedTTFT, cachedTokens: cached, prefixCredit: credit)
    }
}

extension FleetRegistry.Offer {
    /// Decode rate of one stream with `active` streams on the car: the class curve, scaled to the
    /// car's advertised single-stream rate.
    func decodeRate(activeStreams active: Int, hardware: HardwareClass) -> Double {
        let profile = HardwareProfile.of(hardware)
        let scale = self.decodeTokensPerSecond / profile.decodeTokensPerSecond
        return profile.decodeRate(activeStreams: active) * scale
    }
}
