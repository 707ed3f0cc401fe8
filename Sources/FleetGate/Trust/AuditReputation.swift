/// One car's reputation from its audits (issue #20): the posterior mean share of passed audits
/// under a Beta prior, with old audits fading so that a car cannot bank a long honest history
/// and then cheat. Pure: no clock, no I/O.
///
/// `score = (a₀ + passes) / (a₀ + b₀ + passes + fails)` with a₀ = 49, b₀ = 1 (a new car starts at
/// 0.98), and every audit first multiplies the counts by ``memory`` (0.98: about the last 50
/// audits count). Below the quarantine threshold (default 0.95) the car is quarantined: a car that
/// always cheats after 2 failed audits, a car that cheats on exactly every 10th answer after 40
/// audits (at random one time in ten: median 26), an honest car only after 2 false failures close
/// together (`docs/security.md`).
public struct AuditReputation: Sendable, Hashable {
    public static let priorPasses = 49.0
    public static let priorFails = 1.0
    public static let memory = 0.98

    public private(set) var passes = 0.0
    public private(set) var fails = 0.0
    /// Audits counted.
    public private(set) var audits = 0
    /// Audits failed.
    public private(set) var failures = 0
    /// The car was quarantined on this record; if it is audited again, an operator lifted the
    /// quarantine, and it starts afresh (``Auditor``).
    public var quarantined = false

    public init() {}

    /// Records one audit.
    public mutating func record(passed: Bool) {
        self.passes *= Self.memory
        self.fails *= Self.memory
        if passed { self.passes += 1 } else { self.fails += 1 }
        self.audits += 1
        if !passed { self.failures += 1 }
    }

    /// The posterior mean share of passed audits.
    public var score: Double {
        (Self.priorPasses + self.passes) / (Self.priorPasses + Self.priorFails + self.passes + self.fails)
    }
}
