public import FleetProtocol

/// A car's handle in the registry: a slot index and a generation, so a stale id never reaches a
/// car that later took the same slot.
public struct CarID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    init(slot: Int, generation: UInt32) { self.rawValue = Int(generation) << 32 | slot }
    var slot: Int { self.rawValue & 0xFFFF_FFFF }
    var generation: UInt32 { UInt32(truncatingIfNeeded: self.rawValue >> 32) }
    public var description: String { "car#\(self.slot).\(self.generation)" }
}

/// What a verified hello establishes about a car; fixed for the life of its tunnel.
public struct CarDescriptor: Sendable, Hashable {
    /// The raw vehicle id. Never shown to clients or written to logs; see ``pseudonym``.
    public var vehicleID: String
    /// The keyed, rotated hash shown as `x-fleet-vehicle`.
    public var pseudonym: String
    /// The region it serves (allowed by its credential).
    public var region: String
    /// The zone of that region.
    public var zone: String
    public var hardware: HardwareClass
    /// The models with the rates the car advertises (its own measurement, or its class profile).
    public var models: [ModelOffer]
    /// Streams the car runs at once.
    public var slots: Int
    /// Further jobs the car accepts into its own short queue while every slot is busy.
    public var queueDepth: Int
    public var policy: OwnerPolicy
    /// What its engine can do when a stream moves to it mid-answer.
    public var continuation: ContinuationMode
    /// What its engine's prompt cache keeps (nil: unknown; 0 sequences: no prefix reuse, so no
    /// prefix-cache affinity).
    public var promptCache: PromptCacheCapacity?
    /// Whether this replica holds the car's primary tunnel (issue #21): only then does the car
    /// count in this replica's capacity digest.
    public var primary = true
    /// The tunnel addresses of the replicas the car's other tunnels reach, as its last hello or
    /// state said (issue #21); nil when it did not say.
    public var elsewhere: [String]?

    public init(
        vehicleID: String, pseudonym: String, region: String, zone: String, hardware: HardwareClass,
        models: [ModelOffer], slots: Int, queueDepth: Int = 0, policy: OwnerPolicy,
        continuation: ContinuationMode = .none, promptCache: PromptCacheCapacity? = nil
    ) {
        self.continuation = continuation
        self.promptCache = promptCache
        self.vehicleID = vehicleID
        self.pseudonym = pseudonym
        self.region = region
        self.zone = zone
        self.hardware = hardware
        self.models = models
        self.slots = slots
        self.queueDepth = queueDepth
        self.policy = policy
    }
}

/// A read-only view of one car, for the admin API and tests.
public struct CarSnapshot: Sendable, Hashable {
    public var id: CarID
    public var descriptor: CarDescriptor
    public var state: VehicleState
    public var inFlight: Int
    /// Smoothed PING RTT (ms) and its mean deviation, as TCP keeps them (RFC 6298).
    public var rttMilliseconds: Double?
    public var rttDeviationMilliseconds: Double?
    public var draining: Bool
    public var consecutiveFailures: Int
    /// Until when (the registry's clock, seconds) it is given no work after a failure or a busy answer.
    public var backoffUntil: Double = 0
    /// Hedge races lost in a row, and until when the last one passes it over while other capacity
    /// can take a request (the registry's clock, seconds).
    public var racesLost: Int = 0
    public var passedOverUntil: Double = 0
    /// Learned slowdowns against the advertised rates (1 = as advertised), per model.
    public var learned: [String: LearnedRates]
    /// The learned chance that a prefix the gateway believes it holds is still in its runtime's
    /// cache (prefix-cache affinity).
    public var prefixHitProbability: Double = 0
}

/// How a decision picks among eligible cars. Every policy sees the same registry, the same
/// eligibility filters and the same observations; only the choice differs.
public enum SchedulingPolicy: String, Sendable, CaseIterable, Codable {
    /// Uniformly random eligible car.
    case random
    /// The next eligible car in the pool's order.
    case roundRobin = "round-robin"
    /// The car with the fewest streams in flight (found from the per-load index, not a scan).
    case leastOutstanding = "least-outstanding"
    /// The less loaded of two random eligible cars (Mitzenmacher's power of two choices).
    case p2cLeastOutstanding = "p2c-least-outstanding"
    /// Of two random eligible cars, the lower peak-EWMA latency × (outstanding + 1) (Finagle).
    case p2cPeakEWMA = "p2c-peak-ewma"
    /// Of the same probed set as `predictive`, the fewest streams in flight; ties to the fastest
    /// advertised prefill rate (a hardware-aware heuristic without prediction or learning).
    case leastOutstandingFastest = "least-outstanding-fastest"
    /// Of the same probed set as `predictive`, the lowest (streams in flight + 1) ÷ slots
    /// (Envoy's weighted least request, weighted by the slots the car advertises).
    case weightedLeastRequest = "weighted-least-request"
    /// Of the same probed set as `predictive`, the earliest first token expected from the
    /// advertised rates: RTT + queue wait + prompt ÷ advertised prefill rate (no learning).
    case shortestExpectedPrefill = "shortest-expected-prefill"
    /// Lowest predicted cost of a probed candidate set; central also when its prediction says no
    /// car meets the objective and central does.
    case predictive
}

/// What the scheduler needs to know about a request. Never the prompt itself.
public struct RequestProfile: Sendable, Hashable {
    public var model: String
    /// The enforced privacy zone: a hard filter.
    public var zone: String
    /// Estimated prompt tokens.
    public var promptTokens: Int
    /// Expected output tokens (the client's `max_tokens`, or a typical length).
    public var expectedOutputTokens: Int
    /// Time-to-first-token objective in ms (`x-slo-ttft-ms` or the configured default).
    public var ttftObjectiveMilliseconds: Double
    /// Time-per-output-token objective in ms.
    public var tpotObjectiveMilliseconds: Double
    /// Keyed hashes of the conversation's cumulative message prefixes (``PrefixHasher``), shortest
    /// first; empty when prefix-cache affinity is off or the request is not a chat.
    public var prefixes: [PrefixChunk]
    /// Tokens of a model's context window the request needs: its prompt as cars count it
    /// (``Prompt/estimatedTokens``) and its output limit; 0: fits any window. A car whose window
    /// (``ModelOffer/contextTokens``) is smaller is passed over while another car or central can take it.
    public var neededContextTokens = 0

    /// Whether a context window of `window` tokens (0: not said) holds `tokens`: one not said holds
    /// anything (its runtime refuses what does not fit).
    public static func window(_ window: Int, holds tokens: Int) -> Bool { window <= 0 || tokens <= window }

    public init(
        model: String, zone: String, promptTokens: Int, expectedOutputTokens: Int = 256,
        ttftObjectiveMilliseconds: Double = 1_000, tpotObjectiveMilliseconds: Double = 100,
        prefixes: [PrefixChunk] = []
    ) {
        self.prefixes = prefixes
        self.model = model
        self.zone = zone
        self.promptTokens = promptTokens
        self.expectedOutputTokens = expectedOutputTokens
        self.ttftObjectiveMilliseconds = ttftObjectiveMilliseconds
        self.tpotObjectiveMilliseconds = tpotObjectiveMilliseconds
    }
}

/// Central capacity in the request's zone, as the caller sees it at decision time.
public struct CentralOption: Sendable, Hashable {
    /// Predicted time to first token on central, ms.
    public var predictedTTFTMilliseconds: Double
    /// Predicted time per output token on central, ms.
    public var predictedTPOTMilliseconds: Double
    /// Whether central has a free stream for the request's model now.
    public var hasRoom: Bool
    /// Prefill time per prompt token, ms, when central's runtime caches prefixes (0: it does not,
    /// or it is not known): with prefix-cache affinity, the prefix central served last is
    /// subtracted from its prediction at this rate.
    public var cachedPrefillMillisecondsPerToken: Double = 0

    public init(predictedTTFTMilliseconds: Double, predictedTPOTMilliseconds: Double, hasRoom: Bool) {
        self.predictedTTFTMilliseconds = predictedTTFTMilliseconds
        self.predictedTPOTMilliseconds = predictedTPOTMilliseconds
        self.hasRoom = hasRoom
    }
}

/// One ranked option of a decision, with the prediction it was ranked by.
///
/// A car choice is taken with ``FleetRegistry/acquire(_:for:now:)``, which keeps this prediction
/// (it is not computed again): one decision, one prediction, one lease per attempt.
public struct Choice: Sendable, Hashable {
    public enum Route: Sendable, Hashable {
        case car(CarID)
        case central
    }

    public var route: Route
    /// Predicted time to first token, ms (for every policy, so predictions can be scored).
    public var predictedTTFTMilliseconds: Double
    /// Predicted time per output token, ms.
    public var predictedTPOTMilliseconds: Double
    /// The policy's cost (lower is better); for `predictive`, TTFT plus penalties in ms.
    public var score: Double
    /// The parts of the predicted TTFT that are not the car's compute (RTT, queue wait), ms:
    /// what learning subtracts from the observed TTFT.
    var predictedRTTMilliseconds: Double = 0
    var predictedQueueMilliseconds: Double = 0
    /// First token expected from the advertised rates alone (RTT + queue + prompt ÷ advertised
    /// prefill), ms: what the shared spill rule reads, the same for every policy.
    public internal(set) var advertisedTTFTMilliseconds: Double = 0
    /// Prompt tokens of the request's longest prefix the car held (prefix-cache affinity), and
    /// what the prediction subtracted for it, ms.
    public internal(set) var cachedPrefixTokens: Int = 0
    public internal(set) var prefixCreditMilliseconds: Double = 0
    /// The car may be taken while it warms up (``FleetRegistry/Car/isWarmingUp``): the decision's
    /// relaxed pass found nothing else, or the car was addressed directly (``FleetRegistry/evaluate(_:for:now:)``).
    public internal(set) var slowStartWaived = false
    /// The car's context window for the request's model, tokens (0: not said, or central).
    public internal(set) var contextTokens = 0

    /// Whether `request` fits the choice's context window (``RequestProfile/neededContextTokens``): false only
    /// for a car that says a smaller one, which a decision offers when nothing else can take the request.
    public func fits(_ request: RequestProfile) -> Bool {
        RequestProfile.window(self.contextTokens, holds: request.neededContextTokens)
    }

    /// The car, when the route is a car.
    public var car: CarID? {
        if case .car(let id) = self.route { return id }
        return nil
    }
}

/// A scheduling decision: a short ranked list, so a retry has its second choice without a new search.
public struct Decision: Sendable {
    public var choices: [Choice]
    public var policy: SchedulingPolicy
    /// Eligible cars evaluated.
    public var evaluated: Int
    /// How often a free car was passed over because the request does not fit its context window (a car
    /// drawn twice counts twice; 0: never): a decision that found none it fits says the zone's cars that
    /// fit are busy, not all of them.
    public internal(set) var passedOverForWindow = 0

    /// The cars, best first.
    public var cars: [CarID] { self.choices.compactMap(\.car) }
}

/// A slot held on a car for one attempt, from ``FleetRegistry/acquire(_:for:now:)`` to
/// ``FleetRegistry/finish(_:_:now:)``, which returns it with the attempt's outcome so the
/// scheduler learns from it. Every lease is finished exactly once.
public struct Lease: Sendable, Hashable {
    public var car: CarID
    public var model: String
    public var startedAt: Double
    /// Streams the car had (including this one) when the job started.
    public var concurrency: Int
    public var promptTokens: Int
    /// The registry's predictions for this job, ms (those of the decision's choice).
    public var predictedTTFTMilliseconds: Double
    public var predictedTPOTMilliseconds: Double
    /// The parts of the prediction that are not the car's compute: RTT and queue wait, ms.
    var predictedRTTMilliseconds: Double
    var predictedQueueMilliseconds: Double
    /// The request's whole prompt as a prefix (recorded for the car when the job has prefilled),
    /// and the tokens of it the car was believed to hold (what learning checks), for affinity.
    var prefix: PrefixChunk?
    public internal(set) var cachedPrefixTokens: Int = 0
    /// Whether the car was still in its slow start when the job began (``FleetRegistry/firstToken(_:)``
    /// then ends it).
    public internal(set) var carWarmingUp = false
}

/// What happened to a job.
public struct Outcome: Sendable, Hashable {
    /// Observed time to first token, ms, when a token arrived.
    public var ttftMilliseconds: Double?
    /// Observed time per output token after the first, ms, when at least two tokens arrived.
    public var tpotMilliseconds: Double?
    /// Prompt tokens as the engine counted them, when known.
    public var promptTokens: Int?
    public var outputTokens: Int
    public var succeeded: Bool
    /// Seconds the upstream asked to be left alone when it answered busy (429, 503): not a failure
    /// of the car — its failures in a row and their growing back-off are untouched — but it is not
    /// given work for that long (at most 30 s).
    public var busySeconds: Double?
    /// Set when the attempt lost a hedge race: it started before the attempt that beat it to a first
    /// token (or a whole answer) and had none when that came, after this many ms. Not a failure — a
    /// slow car is not a broken one — but a lower bound of its time to first token, and the car is
    /// passed over for a while (``FleetRegistry/finish(_:_:now:)``).
    public var lostRaceAfterMilliseconds: Double?

    public init(
        ttftMilliseconds: Double?, tpotMilliseconds: Double?, promptTokens: Int? = nil, outputTokens: Int,
        succeeded: Bool
    ) {
        self.ttftMilliseconds = ttftMilliseconds
        self.tpotMilliseconds = tpotMilliseconds
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.succeeded = succeeded
    }

    /// A job that failed before producing anything.
    public static let failed = Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: false)
}
