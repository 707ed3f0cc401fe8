import FleetProtocol
public import FleetScheduler

/// Everything that defines a simulated fleet and its workload. Committed before the scorer was
/// tuned (issue #5, point 7); the ground truth deliberately differs from the predictor's formula:
/// a smooth concurrency curve instead of the class table's min(), a hidden per-car slowdown that
/// changes every few minutes, prefill slowed by streams decoding alongside it, per-job noise, a
/// heavy-tailed link, and the car's real slot and queue behaviour.
public struct SimulationParameters: Sendable, Hashable {
    /// Cars connected at any time (replacements arrive as cars leave).
    public var cars = 1_000
    /// Offered load as a multiple of the fleet's capacity (see ``capacity``).
    public var load = 0.8
    /// Fraction of active cars leaving per 10 minutes (home and workplace chargers).
    public var churnPer10Minutes = 0.02
    /// Whether leaving cars announce it (120–600 s ahead) or just drop off.
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
    /// Scorer settings under test (the simulator's own parameters stay fixed).
    public var probes = 16
    public var riskAversion = LatencyPredictor().riskAversion

    public init() {}

    // MARK: Fixed model (documented in LoadTests/README.md)

    /// Four regions over two zones; 30 % of requests (and of cars) are EU-only.
    static let regions: [(region: String, zone: String, share: Double)] = [
        ("eu-north", "eu", 0.12), ("eu-central", "eu", 0.18), ("us-east", "us", 0.40), ("us-west", "us", 0.30),
    ]
    /// Hardware mix of the heterogeneous fleet (an assumption: no public figure).
    static let classMix: [(HardwareClass, Double)] = [(.hw3, 0.45), (.hw4, 0.35), (.ai5, 0.20)]
    /// Car-side queue the agents advertise.
    static let queueDepth = 1
    /// Links (FLEET.md): median RTT ms and lognormal σ; 2 % of samples are spikes of 3–10×
    /// (tails are not published — an assumption, stated).
    static let links: [(LinkType, share: Double, medianMs: Double, sigma: Double)] = [
        (.wifi, 0.6, 15, 0.5), (.cellular, 0.3, 55, 0.45), (.satellite, 0.1, 42, 0.4),
    ]
    /// Workloads: share, prompt median tokens, output median tokens, TTFT objective ms.
    static let workloads: [(name: String, share: Double, prompt: Double, output: Double, sloMs: Double)] = [
        ("chat", 0.6, 400, 180, 1_000), ("code", 0.3, 900, 120, 500), ("long", 0.1, 3_000, 300, 1_000),
    ]
    /// Fast-charge stops: share of the fleet, session 20–40 min, always announced (the navigation knows).
    static let fastChargeShare = 0.05
    /// Connected but not eligible: unplugged under the default policy, or below the charge floor.
    static let unpluggedShare = 0.05
    static let centralRTTMs = 30.0
    static let centralPrefillTPS = 20_000.0
    static let centralDecodeTPS = 60.0
    /// The SLO that defines goodput.
    public static let ttftObjectiveMs = 1_000.0
    public static let tpotObjectiveMs = 100.0
    static let requestModel = "fleet-chat"
}
