/// How the scheduler uses prefix-cache affinity (issue #14). A term in the predictor's score,
/// not a pin: a car holding a request's prefix is predicted to prefill only the rest, discounted
/// by the chance its runtime still holds it (learned per car), so a busy or departing car still
/// loses.
public struct PrefixAffinity: Sendable, Hashable {
    /// Whether decisions look prefixes up and finished jobs record them.
    public var enabled: Bool
    /// Entries per (model, zone) map.
    public var entriesPerPool: Int
    /// Seconds an entry lives after its last use.
    public var ttlSeconds: Double
    /// Holders remembered per prefix.
    public var holdersPerEntry: Int
    /// Hit probability believed, before any observation (counts as one), of a car whose hello
    /// does not say what its runtime caches.
    public var priorHitProbability: Double
    /// The same for a car whose hello says its runtime keeps prefixes (`cache.sequences` > 0).
    public var declaredHitProbability: Double
    /// The least weight of a new hit observation.
    public var hitLearningRate: Double
    /// Hit probability credited to central when it is configured to cache prefixes.
    public var centralHitProbability: Double

    public init(
        enabled: Bool = true, entriesPerPool: Int = 100_000, ttlSeconds: Double = 600, holdersPerEntry: Int = 4,
        priorHitProbability: Double = 0.5, declaredHitProbability: Double = 0.9, hitLearningRate: Double = 0.1,
        centralHitProbability: Double = 0.5
    ) {
        self.declaredHitProbability = declaredHitProbability
        self.enabled = enabled
        self.entriesPerPool = entriesPerPool
        self.ttlSeconds = ttlSeconds
        self.holdersPerEntry = holdersPerEntry
        self.priorHitProbability = priorHitProbability
        self.hitLearningRate = hitLearningRate
        self.centralHitProbability = centralHitProbability
    }

    /// Off: no lookups, no recording, no hashing on the request path.
    public static let disabled = PrefixAffinity(enabled: false)
}
