public import CoreMetrics

/// Metrics of car identity and audits (issue #20). No dimension holds a vehicle id: per-car
/// reputation is on `GET /admin/fleet`, not in Prometheus.
public final class TrustMetrics: Sendable {
    /// Tunnels refused at hello, by reason (`revoked`, `quarantined`, `identity`, `no_certificate`;
    /// `region`: the region map has not the car's region, `region_not_allowed`: its credential does not
    /// name it; `protocol`: a hello, state or status stream the protocol refuses), or before it: `tls`,
    /// a TLS handshake the car failed.
    let refusedRevoked: Counter
    let refusedRegion: Counter
    let refusedRegionNotAllowed: Counter
    let refusedProtocol: Counter
    let refusedTLS: Counter
    let refusedQuarantined: Counter
    let refusedIdentity: Counter
    /// Connected cars closed because the revocation file named them.
    public let revokedLive: Counter
    /// Revocation file reloads by result.
    public let revocationReloadOK: Counter
    public let revocationReloadFailed: Counter
    /// Audits by verdict: `pass`, `fail`, `skipped` (too short), `error` (the trusted runtime failed).
    public let auditPass: Counter
    public let auditFail: Counter
    public let auditSkipped: Counter
    public let auditError: Counter
    /// Completions that would have been audited but found the queue full.
    public let auditDropped: Counter
    /// Completions chosen for an audit (queued).
    public let auditQueued: Counter
    /// Cars quarantined for their audits.
    public let quarantined: Counter
    /// Time one audit took on the trusted runtime.
    public let auditDuration: Timer
    /// Mean log-likelihood per token of audited text (negated, so the histogram is of a positive value).
    public let auditScore: Recorder

    /// The counter of a trust refusal at hello, by its reason's kind.
    func refusalCounter(_ reason: String) -> Counter {
        reason.hasPrefix("quarantined") ? self.refusedQuarantined : self.refusedRevoked
    }

    public init(factory: any MetricsFactory) {
        func refused(_ reason: String) -> Counter {
            Counter(label: "fleet_car_refused_total", dimensions: [("reason", reason)], factory: factory)
        }
        func audit(_ verdict: String) -> Counter {
            Counter(label: "fleet_audits_total", dimensions: [("verdict", verdict)], factory: factory)
        }
        self.refusedRevoked = refused("revoked")
        self.refusedQuarantined = refused("quarantined")
        self.refusedIdentity = refused("identity")
        self.refusedTLS = refused("tls")
        self.refusedRegion = refused("region")
        self.refusedRegionNotAllowed = refused("region_not_allowed")
        self.refusedProtocol = refused("protocol")
        self.revokedLive = Counter(label: "fleet_car_revoked_live_total", factory: factory)
        self.revocationReloadOK = Counter(
            label: "fleet_revocation_reloads_total", dimensions: [("result", "ok")], factory: factory)
        self.revocationReloadFailed = Counter(
            label: "fleet_revocation_reloads_total", dimensions: [("result", "error")], factory: factory)
        self.auditPass = audit("pass")
        self.auditFail = audit("fail")
        self.auditSkipped = audit("skipped")
        self.auditError = audit("error")
        self.auditDropped = Counter(label: "fleet_audits_dropped_total", factory: factory)
        self.auditQueued = Counter(label: "fleet_audits_queued_total", factory: factory)
        self.quarantined = Counter(label: "fleet_cars_quarantined_total", factory: factory)
        self.auditDuration = Timer(label: "fleet_audit_duration_seconds", factory: factory)
        self.auditScore = Recorder(label: "fleet_audit_negative_mean_logprob", factory: factory)
    }
}
