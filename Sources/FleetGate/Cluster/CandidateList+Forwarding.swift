import FleetProtocol
import FleetScheduler

extension CandidateList {
    /// What a request may still do across replicas (issue #21): nil when clustering is off or the
    /// request was itself forwarded (one hop at most).
    struct Forwarding {
        /// Replicas already tried.
        var tried: [String] = []
    }

    /// A forward to another replica, when its digest promises a TTFT better than the best local
    /// car by `cluster.forwardMarginMilliseconds`, or when no local car can serve. Never for a
    /// central-only key. A continuation is forwarded as the original request, and this replica
    /// skips the tokens the client already has (``AttemptLease/exactReplayStart(resumeFrom:)``).
    mutating func forwardIfBetter(continuation: Bool) -> AttemptLease? {
        guard var forwarding = self.forwarding, !self.centralOnly, let cluster = self.core.cluster
        else { return nil }
        guard
            let target = cluster.forwardTarget(
                zone: self.profile.zone, model: self.profile.model,
                // A car the request does not fit (offered when nothing else here can take it) is none.
                localHasCar: self.choices.contains { $0.car != nil && $0.fits(self.profile) },
                excluding: forwarding.tried, now: self.core.now)
        else { return nil }
        forwarding.tried.append(target.replica)
        self.forwarding = forwarding
        return .forward(target, predictedTTFTMilliseconds: nil)
    }
}

extension AttemptLease {
    /// The token index the upstream's text starts at when it regenerates the answer token for
    /// token (so the relay drops what the client already has), or nil when it does not.
    ///
    /// A car or a central endpoint with exact continuation starts at the attempt's resume point. A forwarded attempt
    /// (issue #21) carries the original request, so the other replica's car starts from token 0
    /// with the same seed: exact for deterministic engines (the synthetic one, greedy decoding).
    func exactReplayStart(resumeFrom: Int) -> Int? {
        switch self {
        case .car(let car, _, _): car.continuation == .exact ? resumeFrom : nil
        case .forward: 0
        case .central(let endpoint, _): endpoint.continuation == .exact ? resumeFrom : nil
        }
    }
}
