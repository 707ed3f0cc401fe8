import CoreMetrics
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import NIOCore

/// One upstream taken for one attempt: a slot on a car (with the scheduler's prediction for it)
/// or on a central endpoint. Given back exactly once, with the attempt's outcome.
enum AttemptLease: Sendable {
    case car(CarDescriptor, Lease, HTTP2ConnectionHandle)
    case central(CentralDirectory.Endpoint, predictedTTFTMilliseconds: Double?)
    case forward(ClusterView.Target, predictedTTFTMilliseconds: Double?)  // cluster (#21): another replica

    /// Where the attempt runs, for the audit line: route, region (a replica's is `servingRegion`) and the
    /// car's pseudonym or the replica ("-" for central).
    func auditPlace(servingRegion: String?) -> (route: String, region: String, vehicle: String) {
        switch self {
        case .car(let car, _, _): ("car", car.region, car.pseudonym)
        case .central(let endpoint, _): ("central", endpoint.region, "-")
        case .forward(let target, _): ("replica", servingRegion ?? "-", target.replica)
        }
    }

    /// Whether the attempt runs on a car (not central capacity or another replica).
    var isCar: Bool {
        if case .car = self { return true }
        return false
    }

    var predictedTTFTMilliseconds: Double? {
        switch self {
        case .car(_, let dispatch, _): dispatch.predictedTTFTMilliseconds
        case .central(_, let predicted): predicted
        case .forward(_, let predicted): predicted  // cluster (#21)
        }
    }

    var predictedTPOTMilliseconds: Double? {
        switch self {
        case .car(_, let dispatch, _): dispatch.predictedTPOTMilliseconds
        case .central, .forward: nil  // cluster (#21)
        }
    }

    /// The zone the upstream serves: always the request's (checked again at every acquisition).
    var zone: String {
        switch self {
        case .car(let car, _, _): car.zone
        case .central(let endpoint, _): endpoint.zone
        case .forward(let target, _): target.zone  // cluster (#21)
        }
    }
}

/// The scheduler's ranked candidates for one request, handed out one lease per attempt.
///
/// The scheduler is asked once per round (a ranked short list); a retry, hedge or continuation
/// takes the next entry, and asks again, excluding every car already tried, when the list runs
/// out. Central capacity in the request's zone comes last when no car can be had. A candidate
/// outside the request's zone is never returned (an invariant, checked here as well as in the
/// registry).
struct CandidateList {
    let core: GatewayCore
    let profile: RequestProfile
    let preferredRegion: String
    /// Only central capacity (an application key's policy): cars are never handed out.
    var centralOnly = false
    /// A lost stream waits for a car's slot in the zone (``CapacityWaiters``): no car for this search
    /// whose context window is at least this (the smallest a waiter needs; 0: any), or that does not say one.
    var carsYielded: Int?
    /// Only cars the request fits (``Choice/fits(_:)``): for a hedge, which a car that refuses the prompt
    /// as too long would only cost an attempt (a decision offers such a car when nothing else can take it).
    var fittingOnly = false
    /// A decision passed free cars over because the request does not fit their context window.
    private(set) var passedOverForWindow = false
    private(set) var choices: [Choice] = []  // cluster (#21): read by forwardIfBetter
    private var tried: [CarID] = []
    /// Central endpoints tried (their base URLs): a few at most, so an array, not a set (a set's
    /// storage and hashing cost ~1 k instructions a request; issue #19).
    private var triedCentral: [String] = []
    /// cluster (#21): nil unless clustering is on and the request was not itself forwarded.
    var forwarding: Forwarding?

    init(core: GatewayCore, profile: RequestProfile, preferredRegion: String) {
        self.core = core
        self.profile = profile
        self.preferredRegion = preferredRegion
    }

    /// Cars tried so far.
    var triedCars: [CarID] { self.tried }

    /// Takes the next candidate, or nil when nothing in the zone can serve now. A `continuation`
    /// needs an upstream that can continue from the delivered tokens: a car whose engine says so,
    /// or a central endpoint configured with a continuation mode.
    mutating func next(continuation: Bool = false) -> AttemptLease? {
        var rounds = 0
        // Cars a continuation passed over (they cannot continue), and cars that had no slot free or
        // had left when their turn came: left out of this search's next decision, which would rank
        // them first again, but not tried — a later search (a capacity wait's next look, a restart)
        // may take them (helper-58: a full car marked tried was never offered to a waiting stream).
        var passedOver: [CarID] = []
        var unavailable: [CarID] = []
        // A car refused because it began its slow start since it was ranked: not unavailable, the next
        // decision offers it again if nothing else can serve (helper-79: marked unavailable, the relaxed
        // pass could never offer it, and the request waited or was refused beside an idle-enough car).
        var warmedUp = false
        while true {
            if self.choices.isEmpty {
                // One decision a search; a search that passed cars over, or found them full, asks again
                // for the next ones (a decision ranks a few), a bounded number of times.
                guard
                    rounds == 0
                        || ((!passedOver.isEmpty || !unavailable.isEmpty || warmedUp)
                            && rounds < Self.continuationRounds)
                else { break }
                warmedUp = false
                self.decide(
                    alsoExcluding: unavailable.isEmpty ? passedOver : passedOver + unavailable, counted: rounds == 0,
                    continuation: continuation)
                rounds += 1
                if rounds == 1, let lease = self.forwardIfBetter(continuation: continuation) { return lease }  // cluster (#21)
                if self.choices.isEmpty { break }
            }
            let choice = self.choices.removeFirst()
            // A car the request does not fit is not held for a waiter: it would only refuse it (helper-126).
            let yielded =
                self.carsYielded.map {
                    choice.fits(self.profile) && RequestProfile.window(choice.contextTokens, holds: $0)
                }
                ?? false
            guard let id = choice.car, !self.centralOnly, !yielded else {
                if let lease = self.central(predicted: choice.predictedTTFTMilliseconds, continuation: continuation) {
                    return lease
                }
                continue
            }
            guard !self.tried.contains(id), !unavailable.contains(id), !self.fittingOnly || choice.fits(self.profile)
            else { continue }
            let descriptor = self.core.registry.descriptor(id)
            // A car that cannot continue is passed over, not tried: a `stream: false` answer that
            // found no continuation starts again from nothing, and this car may serve that.
            if continuation, let descriptor, descriptor.continuation == .none {
                passedOver.append(id)
                continue
            }
            guard let car = descriptor, car.zone == self.profile.zone,
                let tunnel = self.core.tunnels.handle(for: id),
                let dispatch = self.core.registry.acquire(choice, for: self.profile, now: self.core.now)
            else {
                if !choice.slowStartWaived, self.core.registry.isHeldBack(id, now: self.core.now) {
                    warmedUp = true
                } else {
                    unavailable.append(id)
                }
                continue
            }
            self.tried.append(id)
            return .car(car, dispatch, tunnel)
        }
        // No car fits: central capacity in the same zone, never outside it.
        let option = self.core.central.option(
            model: self.profile.model, zone: self.profile.zone, promptTokens: self.profile.promptTokens)
        return self.central(predicted: option?.predictedTTFTMilliseconds, continuation: continuation)
    }

    /// When the request's zone has capacity for its model that is only busy, although
    /// ``next(continuation:)`` found none that could take it now, the `Retry-After` for its refusal;
    /// nil when nothing in the zone serves the model. Busy capacity: a car held back only by its slots
    /// or a back-off (unless the key is central-only; ``FleetRegistry/hasBusyCapacity(model:zone:now:)``),
    /// or a healthy central endpoint serving the model (``centralBusyRetryAfter``). Asked only on that
    /// refusal: capacity is expected back, so it is 503 `server_overloaded` with `Retry-After`, not
    /// `no_capacity_in_zone` (DESIGN.md, overload and refusals), which tells the client nothing in its
    /// zone can serve.
    var zoneBusyRetryAfter: Int? { self.zoneBusyRetryAfter(excluding: nil) }

    /// ``zoneBusyRetryAfter``, not counting the car `excluding` (one that refused the request itself:
    /// its slot frees, but it would refuse again), nor, when `fitting`, cars whose context window the
    /// request does not fit (after a refusal as too long: helper-126, a 503 to retry for ever).
    func zoneBusyRetryAfter(excluding: CarID?, fitting: Bool = false) -> Int? {
        if self.carsBusy(excluding: excluding.map { [$0] } ?? [], fitting: fitting) { return 1 }
        let model = self.profile.model
        let zone = self.profile.zone
        guard self.core.httpClient != nil, self.core.central.option(model: model, zone: zone) != nil else { return nil }
        return self.core.central.busyRetryAfter(model: model, zone: zone) ?? 1
    }

    /// When a retry found no candidate, the `Retry-After` for the request's refusal if capacity it has
    /// not tried is only busy: another car held back by its slots or a back-off, or the zone's central
    /// capacity at its bound when none of it was tried (the directory cannot tell a tried endpoint's
    /// bound from an untried one's; helper-86). Nil when what is left was all tried: the failures are
    /// the answer.
    var untriedBusyRetryAfter: Int? {
        if self.carsBusy(excluding: self.tried) { return 1 }
        return self.triedCentral.isEmpty ? self.centralBusyRetryAfter : nil
    }

    /// Whether a car of the zone other than `excluding`, for this request's model, is held back only by
    /// its slots or a back-off (which free within about a second); never for a central-only key.
    private func carsBusy(excluding: [CarID], fitting: Bool = false) -> Bool {
        !self.centralOnly
            && self.core.registry.hasBusyCapacity(
                model: self.profile.model, zone: self.profile.zone, now: self.core.now, excluding: excluding,
                fitting: fitting ? self.profile : nil)
    }

    /// When the zone's central capacity for the request's model is out of rotation for its failures and
    /// expected back (``CentralEjection``), the seconds until it is; nil otherwise.
    var ejectedCentralRetryAfter: Int? {
        guard self.core.httpClient != nil else { return nil }
        return self.core.central.ejectedRetryAfter(model: self.profile.model, zone: self.profile.zone)
    }

    /// When the zone has central capacity for the request's model and all of it is busy — at its
    /// concurrency bound (about a second), or left alone for the `Retry-After` it asked (the soonest
    /// of those) — the `Retry-After` for a refusal; else nil.
    var centralBusyRetryAfter: Int? {
        let model = self.profile.model
        let zone = self.profile.zone
        guard self.core.httpClient != nil, self.core.central.option(model: model, zone: zone)?.hasRoom == false
        else { return nil }
        return self.core.central.busyRetryAfter(model: model, zone: zone) ?? 1
    }

    /// Decisions a continuation search may ask for while it passes over cars that cannot continue.
    static let continuationRounds = 8

    /// Asks the scheduler for the next choices, without the cars tried (and `alsoExcluding`); only
    /// a search's first decision is `counted` in the decision metrics.
    private mutating func decide(alsoExcluding: [CarID] = [], counted: Bool = true, continuation: Bool) {
        let central = self.core.central.option(
            model: self.profile.model, zone: self.profile.zone, promptTokens: self.profile.promptTokens,
            excluding: self.centralExcluded(continuation: continuation), continuation: continuation)
        let start = NIODeadline.now()
        let decision = self.core.registry.decide(
            self.profile, central: central, excluding: alsoExcluding.isEmpty ? self.tried : self.tried + alsoExcluding,
            now: self.core.now)
        if counted {
            self.core.metrics.decisionTime.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
            self.core.metrics.decision(firstChoice: decision.choices.first)
        }
        self.choices = decision.choices
        if decision.passedOverForWindow > 0 { self.passedOverForWindow = true }
    }

    /// The central endpoints this attempt may not take: those tried, except that a continuation may
    /// go back, once, to one (below).
    private func centralExcluded(continuation: Bool) -> [String] {
        guard continuation, !self.triedCentral.isEmpty else { return self.triedCentral }
        return self.triedCentral.filter { url in self.triedCentral.count(where: { $0 == url }) > 1 }
    }

    private mutating func central(predicted: Double?, continuation: Bool) -> AttemptLease? {
        // A continuation may go back, once, to an endpoint already tried: a stream lost to a blip
        // on the way to a healthy endpoint is continued there on a new connection (helper-65: with
        // one central endpoint in the zone, every central stream ended on the first reset). An
        // endpoint that fails for good is out of the healthy list, or the migration limit ends it.
        guard self.core.httpClient != nil,
            let endpoint = self.core.central.acquire(
                model: self.profile.model, zone: self.profile.zone, preferring: self.preferredRegion,
                excluding: self.centralExcluded(continuation: continuation), continuation: continuation),
            endpoint.zone == self.profile.zone
        else { return nil }
        self.triedCentral.append(endpoint.baseURL)
        return .central(endpoint, predictedTTFTMilliseconds: predicted)
    }

    /// Gives a lease back with what its attempt showed; `busyFor`: the seconds an upstream that
    /// answered busy asked to be left alone (a car's runtime, a central endpoint); `failure`: a failed
    /// attempt's label, for the log line when the upstream's failures in a row reach a mark.
    func release(_ lease: AttemptLease, outcome: Outcome, busyFor: Int? = nil, failure: String? = nil) {
        switch lease {
        case .car(let car, let dispatch, _):
            var outcome = outcome
            outcome.busySeconds = busyFor.map(Double.init)
            if let news = self.core.registry.finish(dispatch, outcome, now: self.core.now) {
                self.core.logCarHealth(news, car: car, failure: failure)
            }
        case .central(let endpoint, _):
            self.core.central.release(
                endpoint, outcome: outcome, promptTokens: self.profile.promptTokens, busyFor: busyFor,
                failure: failure)
            // #14: a central runtime that caches prefixes now holds this prompt (a no-op without prefixes).
            // Served: a first token, or a whole answer (which has no first-token time).
            if outcome.ttftMilliseconds != nil || (outcome.succeeded && outcome.outputTokens > 0) {
                self.core.registry.recordCentral(self.profile, now: self.core.now)
            }
        case .forward(let target, _):
            self.core.cluster?.forwardEnded(target)  // cluster (#21)
        }
    }
}
