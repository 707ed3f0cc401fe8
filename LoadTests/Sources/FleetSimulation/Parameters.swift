import FleetProtocol
public import FleetScheduler

/// Everything that defines one simulated run: the fleet and workload (a ``ParameterSet``), the
/// policy and the scorer settings under test.
///
/// The ground truth deliberately differs from the predictor's formula: a smooth concurrency
/// curve instead of the class table's min(), a hidden per-car slowdown that changes every few
/// minutes, prefill slowed by streams decoding alongside it, per-job noise, a heavy-tailed link,
/// job failures, silent departures noticed only after missed PINGs, and central capacity that
/// queues and slows under load.
public struct SimulationParameters: Sendable, Hashable {
    /// Cars connected at any time (replacements arrive as cars leave).
    public var cars = 1_000
    /// Offered load as a multiple of the fleet's capacity (see ``Simulation/capacity()``).
    public var load = 0.8
    /// Fraction of active cars leaving per 10 minutes (home and workplace chargers).
    public var churnPer10Minutes = 0.02
    /// Whether leaving cars announce it (120–600 s ahead) or just drop off (noticed after missed PINGs).
    public var departureNotice = true
    /// One hardware class and one link type: the control fleet.
    public var homogeneous = false
    public var seed: UInt64 = 1
    /// Seconds simulated before measuring, then measured.
    public var warmupSeconds = 120.0
    public var measuredSeconds = 480.0
    public var policy: SchedulingPolicy = .predictive
    /// Central capacity per zone: concurrent streams as a share of the zone's car slots (0: none).
    public var centralShareOfSlots = 0.05
    /// Which fleet and workload.
    public var set: ParameterSet = .tuning
    /// Scorer settings under test (the simulator's own parameters stay fixed).
    public var probes = 16
    public var riskAversion = LatencyPredictor().riskAversion
    /// Whether the predictor learns from outcomes (off: an ablation).
    public var learning = true
    /// Give the scheduler the true prompt size and the class's median output (the old, leaky
    /// simulator) instead of the gateway's own estimates.
    public var exactEstimates = false
    /// Further predictor settings by name (`decodeWeight`, `prefillContention`, `fitMargin`,
    /// `learningRate`, `tpotMissPenalty`), for ablations and tuning on the tuning set.
    public var scorer: [String: Double] = [:]
    /// The multi-turn workload (issue #14): conversations of 2–20 turns with think times, each
    /// turn resending the whole history; cars' runtimes keep recent conversations' prefixes.
    public var conversations = false
    /// Prefix-cache affinity in the scorer (the `affinity` scorer setting turns it off with 0).
    public var affinity: Bool { (self.scorer["affinity"] ?? 1) != 0 }
    /// Issue #21: gateway replicas (1: one global registry), how often each publishes its
    /// capacity digest, the forwarding margin, and the added latency of a forward (one hop).
    public var replicas = 1
    public var digestIntervalSeconds = 1.0
    public var forwardMarginMilliseconds = 200.0
    public var hopMilliseconds = 2.0

    public init() {}

    /// Time-per-token objective, ms, for every class.
    public static let tpotObjectiveMs = 100.0
    static let requestModel = "fleet-chat"
}

/// A named fleet and workload. `tuning` is the set the scorer may be tuned on; `held-out` was
/// written and committed before it was ever run, and no setting is changed after running it.
public enum ParameterSet: String, Sendable, Hashable, CaseIterable {
    case tuning
    case heldOut = "held-out"

    var model: FleetModel {
        switch self {
        case .tuning: .tuning
        case .heldOut: .heldOut
        }
    }
}

/// The numbers behind a ``ParameterSet`` (documented in LoadTests/README.md).
struct FleetModel {
    struct Link {
        var type: LinkType
        var share: Double
        /// Median RTT ms and lognormal σ.
        var medianMs: Double
        var sigma: Double
    }

    struct Workload {
        var name: String
        var share: Double
        var promptMedian: Double
        var promptSigma: Double
        var outputMedian: Double
        var outputSigma: Double
        /// The class's TTFT objective, ms: what the scheduler is told and what is counted.
        var ttftObjectiveMs: Double
    }

    /// Regions over two zones: (region, zone, share of cars and of requests).
    var regions: [(region: String, zone: String, share: Double)]
    /// Hardware mix of the heterogeneous fleet (an assumption: no public figure).
    var classMix: [(HardwareClass, Double)]
    var links: [Link]
    /// Share of RTT samples that are spikes, and the spike's factor range.
    var spikeShare: Double
    var spikeFactor: ClosedRange<Double>
    var workloads: [Workload]
    /// Hidden slowdowns: (weight, range); a car redraws every `slowdownChangeSeconds` on average.
    var slowdowns: [(Double, ClosedRange<Double>)]
    var slowdownChangeSeconds: Double
    /// Share of requests whose client sets `max_tokens` (otherwise the gateway assumes 256).
    var maxTokensShare: Double
    /// Request body bytes per prompt token (median, lognormal σ) and the JSON around the prompt.
    var bytesPerToken: Double
    var bytesPerTokenSigma: Double
    var overheadBytes: ClosedRange<Double>
    /// Job failures: most cars fail `baseFailure` of their jobs, `flakyShare` of cars fail `flakyFailure`.
    var baseFailure: Double
    var flakyShare: Double
    var flakyFailure: Double
    /// A silent departure is noticed after this many seconds (missed PINGs).
    var detectionSeconds: ClosedRange<Double>
    /// Central: RTT median ms, prefill tok/s and decode tok/s of one stream when idle; under
    /// load both slow by (1 + slowdown × busy share); per-job lognormal noise σ; spikes.
    var centralRTTMs: Double
    var centralPrefillTPS: Double
    var centralDecodeTPS: Double
    var centralLoadSlowdown: Double
    var centralNoiseSigma: Double
    /// Central queue: jobs waiting beyond its streams, as a share of them.
    var centralQueueShare: Double
    /// Price of a central token (prompt or output), $ per million.
    var centralDollarsPerMillionTokens: Double
    /// The multi-turn workload (`--conversations`, issue #14).
    var conversation = Conversation.tuning

    /// Conversations: turns, think times, and what cars' runtimes keep of them.
    struct Conversation {
        /// Turns per conversation, uniform.
        var turns: ClosedRange<Int> = 2...20
        /// Tokens of each later user message (lognormal median, σ); the first turn's prompt is the class's.
        var userMedian: Double
        var userSigma: Double
        /// Seconds from an answer's end to the next turn (lognormal median, σ).
        var thinkMedian: Double
        var thinkSigma: Double
        /// Share of cars whose runtime really reuses prefixes (the others say they do, but miss).
        var cacheWorksShare: Double
        /// Conversations a car's runtime keeps at once, per class (HW3, HW4, AI5), LRU.
        var cacheSequences: [HardwareClass: Int]
        /// JSON bytes per message around its text.
        var messageOverheadBytes: Double

        static let tuning = Conversation(
            userMedian: 80, userSigma: 0.8, thinkMedian: 20, thinkSigma: 0.8, cacheWorksShare: 0.9,
            cacheSequences: [.hw3: 4, .hw4: 8, .ai5: 16], messageOverheadBytes: 30)
        /// Written before any run on it; never tuned on.
        static let heldOut = Conversation(
            userMedian: 120, userSigma: 1.0, thinkMedian: 30, thinkSigma: 1.0, cacheWorksShare: 0.8,
            cacheSequences: [.hw3: 2, .hw4: 6, .ai5: 12], messageOverheadBytes: 45)
    }

    /// The set the scorer may be tuned on (issue #5's model, with per-class objectives that are
    /// reachable on the fastest car, the gateway's estimates, failures and a central that queues).
    static let tuning = FleetModel(
        regions: [
            ("eu-north", "eu", 0.12), ("eu-central", "eu", 0.18), ("us-east", "us", 0.40), ("us-west", "us", 0.30),
        ],
        classMix: [(.hw3, 0.45), (.hw4, 0.35), (.ai5, 0.20)],
        links: [
            Link(type: .wifi, share: 0.6, medianMs: 15, sigma: 0.5),
            Link(type: .cellular, share: 0.3, medianMs: 55, sigma: 0.45),
            Link(type: .satellite, share: 0.1, medianMs: 42, sigma: 0.4),
        ],
        spikeShare: 0.02, spikeFactor: 3...10,
        workloads: [
            Workload(
                name: "chat", share: 0.6, promptMedian: 400, promptSigma: 0.6, outputMedian: 180, outputSigma: 0.5,
                ttftObjectiveMs: 1_000),
            Workload(
                name: "code", share: 0.3, promptMedian: 900, promptSigma: 0.6, outputMedian: 120, outputSigma: 0.5,
                ttftObjectiveMs: 800),
            Workload(
                name: "long", share: 0.1, promptMedian: 3_000, promptSigma: 0.6, outputMedian: 300, outputSigma: 0.5,
                ttftObjectiveMs: 4_000),
        ],
        slowdowns: [(0.6, 1...1.3), (0.25, 1.3...2.5), (0.15, 2.5...4)], slowdownChangeSeconds: 240,
        maxTokensShare: 0.4, bytesPerToken: 4.2, bytesPerTokenSigma: 0.15, overheadBytes: 80...400,
        baseFailure: 0.005, flakyShare: 0.05, flakyFailure: 0.2, detectionSeconds: 10...15,
        centralRTTMs: 30, centralPrefillTPS: 20_000, centralDecodeTPS: 60, centralLoadSlowdown: 1.0,
        centralNoiseSigma: 0.25, centralQueueShare: 0.25, centralDollarsPerMillionTokens: 0.6)

    /// The held-out set: another hardware mix, slower and more varied links, other request
    /// classes, objectives, slowdowns and central. Written before any run on it; never tuned on.
    static let heldOut = FleetModel(
        regions: [
            ("eu-north", "eu", 0.20), ("eu-central", "eu", 0.25), ("us-east", "us", 0.30), ("us-west", "us", 0.25),
        ],
        classMix: [(.hw3, 0.30), (.hw4, 0.45), (.ai5, 0.25)],
        links: [
            Link(type: .wifi, share: 0.45, medianMs: 25, sigma: 0.6),
            Link(type: .cellular, share: 0.40, medianMs: 70, sigma: 0.55),
            Link(type: .satellite, share: 0.15, medianMs: 45, sigma: 0.7),
        ],
        spikeShare: 0.04, spikeFactor: 2...8,
        workloads: [
            Workload(
                name: "chat", share: 0.5, promptMedian: 250, promptSigma: 0.9, outputMedian: 220, outputSigma: 0.7,
                ttftObjectiveMs: 800),
            Workload(
                name: "rag", share: 0.3, promptMedian: 1_800, promptSigma: 0.5, outputMedian: 150, outputSigma: 0.6,
                ttftObjectiveMs: 2_500),
            Workload(
                name: "agent", share: 0.2, promptMedian: 1_200, promptSigma: 0.7, outputMedian: 60, outputSigma: 0.8,
                ttftObjectiveMs: 1_500),
        ],
        slowdowns: [(0.5, 1...1.2), (0.3, 1.2...2), (0.2, 2...5)], slowdownChangeSeconds: 180,
        maxTokensShare: 0.6, bytesPerToken: 3.6, bytesPerTokenSigma: 0.2, overheadBytes: 150...900,
        baseFailure: 0.01, flakyShare: 0.08, flakyFailure: 0.15, detectionSeconds: 8...20,
        centralRTTMs: 40, centralPrefillTPS: 15_000, centralDecodeTPS: 50, centralLoadSlowdown: 1.5,
        centralNoiseSigma: 0.35, centralQueueShare: 0.25, centralDollarsPerMillionTokens: 0.6,
        conversation: .heldOut)
}
