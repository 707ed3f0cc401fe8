public import FleetProtocol
import Foundation
import Synchronization

/// Decisions: ranking a request's candidates, spilling to central, taking a slot (one lease per
/// attempt), and learning from each outcome.
extension FleetRegistry {
    /// Decides where a request goes: a short ranked list of cars and possibly central.
    /// - Parameters:
    ///   - request: what the scheduler may know about the request.
    ///   - central: central capacity in the request's zone, if any; its `hasRoom` must say whether
    ///     central can take this attempt (a continuation, the endpoints already tried), since a
    ///     warming-up car is offered only when it cannot.
    ///   - excluding: cars already tried for this request.
    ///   - now: seconds on the caller's clock.
    ///   - limit: cars in the list at most.
    public func decide(
        _ request: RequestProfile, central: CentralOption? = nil, excluding: [CarID] = [], now: Double, limit: Int = 3
    ) -> Decision {
        var decision = self.storage.withLock { s in
            var selector = Selector(registry: self, request: request, excluding: excluding, now: now, limit: limit)
            // A request over every window the pool's cars said skips the walk and the busy scan, which
            // would look at every car (helper-126: a loop of such prompts held the lock for thousands).
            let fitsNone = Self.fitsNoCar(request, in: s)
            var decision = fitsNone ? Decision(choices: [], policy: self.policy, evaluated: 0) : selector.select(in: &s)
            decision.passedOverForWindow = fitsNone ? 1 : selector.tooSmallPassed
            guard decision.choices.isEmpty, central?.hasRoom != true else { return decision }
            // Only when nothing else can take it: a held-back car's next job (slow start,
            // ``Car/isHeldBack(now:)``), and a car whose window is too small — when no car it fits
            // is busy either, so that its runtime's own 400 answers, as it would without windows.
            let anyWindow =
                fitsNone
                || (selector.tooSmallPassed > 0
                    && !Self.hasBusyCapacity(
                        in: &s, model: request.model, zone: request.zone, now: now, excluding: excluding,
                        fitting: request, eligibility: self.eligibility))
            guard selector.warmingUpPassed > 0 || anyWindow else { return decision }
            var relaxed = Selector(
                registry: self, request: request, excluding: excluding, now: now, limit: anyWindow ? 4 * limit : limit)
            relaxed.slowStart = false
            relaxed.checksWindows = !anyWindow
            var chosen = relaxed.select(in: &s)
            chosen.passedOverForWindow = decision.passedOverForWindow
            if anyWindow {
                // The largest windows first (not said: first), in the policy's order among equals: the
                // refusal the app gets names the most it may send.
                let window = { (c: Choice) in c.contextTokens <= 0 ? Int.max : c.contextTokens }
                chosen.choices = Array(
                    chosen.choices.enumerated().sorted {
                        (window($0.element), -$0.offset) > (window($1.element), -$1.offset)
                    }
                    .prefix(limit).map(\.element))
            }
            return chosen
        }
        guard var central, central.hasRoom else { return decision }
        if central.cachedPrefillMillisecondsPerToken > 0, self.affinity.enabled, !request.prefixes.isEmpty {
            let held = self.storage.withLock { s in Self.centralHeldTokens(request, now: now, in: &s) }
            let credit =
                self.affinity.centralHitProbability * Double(min(held, max(0, request.promptTokens - 1)))
                * central.cachedPrefillMillisecondsPerToken
            central.predictedTTFTMilliseconds = max(1, central.predictedTTFTMilliseconds - credit)
        }
        let centralChoice = Choice(
            route: .central, predictedTTFTMilliseconds: central.predictedTTFTMilliseconds,
            predictedTPOTMilliseconds: central.predictedTPOTMilliseconds, score: central.predictedTTFTMilliseconds,
            advertisedTTFTMilliseconds: central.predictedTTFTMilliseconds)
        guard let best = decision.choices.first else {
            decision.choices = [centralChoice]
            return decision
        }
        if Self.spills(
            to: central, from: best, request: request,
            byPrediction: self.policy == .predictive && self.predictor.centralByPrediction)
        {
            decision.choices.insert(centralChoice, at: 0)
        } else {
            decision.choices.append(centralChoice)
        }
        return decision
    }

    /// Whether the request is over every context window its pool's cars said, none of them saying none.
    private static func fitsNoCar(_ request: RequestProfile, in s: Storage) -> Bool {
        guard request.neededContextTokens > 0,
            let pool = s.poolIndex[PoolKey(zone: request.zone, model: request.model)]
        else { return false }
        let windows = s.pools[Int(pool)].windows  // 0: a car that said none, which holds anything
        return !windows.isEmpty
            && !windows.keys.contains { RequestProfile.window(Int($0), holds: request.neededContextTokens) }
    }

    /// Whether central goes before the policy's best car.
    ///
    /// One rule for every policy, so central capacity is shared out the same way whatever
    /// chooses the car: central first when the chosen car is not expected, at its advertised
    /// rates, to deliver the first token within the objective (RTT + queue wait + prompt ÷
    /// advertised prefill) and central is expected sooner. On top of it, `predictive` also puts
    /// central first when its own prediction (learned slowdowns, doubt, the time-per-token
    /// objective) says the car misses an objective that central meets. Central with no room is
    /// never chosen; with no car, central is the only choice.
    static func spills(to central: CentralOption, from best: Choice, request: RequestProfile, byPrediction: Bool)
        -> Bool
    {
        if best.advertisedTTFTMilliseconds > request.ttftObjectiveMilliseconds
            && central.predictedTTFTMilliseconds < best.advertisedTTFTMilliseconds
        {
            return true
        }
        guard byPrediction else { return false }
        let carMisses =
            best.predictedTTFTMilliseconds > request.ttftObjectiveMilliseconds
            || best.predictedTPOTMilliseconds > request.tpotObjectiveMilliseconds
        let centralMeets =
            central.predictedTTFTMilliseconds <= request.ttftObjectiveMilliseconds
            && central.predictedTPOTMilliseconds <= request.tpotObjectiveMilliseconds
        return carMisses && centralMeets
    }

    /// Tokens of the request's longest prefix central served, within the TTL.
    private static func centralHeldTokens(_ request: RequestProfile, now: Double, in s: inout Storage) -> Int {
        guard let pool = s.poolIndex[PoolKey(zone: request.zone, model: request.model)],
            s.pools[Int(pool)].prefixes != nil
        else { return 0 }
        let held = s.pools[Int(pool)].prefixes!.lookup(request.prefixes, now: now, limit: 8)
        return Int(held.first { $0.holder.id == PrefixCacheMap.central }?.tokens ?? 0)
    }

    /// Records that central served a request's whole prompt (prefix-cache affinity for central
    /// endpoints whose runtime caches prefixes). Call when its first token arrived.
    public func recordCentral(_ request: RequestProfile, now: Double) {
        guard self.affinity.enabled, let chunk = request.prefixes.last else { return }
        self.storage.withLock { s in
            guard let pool = s.poolIndex[PoolKey(zone: request.zone, model: request.model)] else { return }
            self.record(chunk, holder: .init(id: PrefixCacheMap.central, epoch: 0), pool: Int(pool), now: now, in: &s)
        }
    }

    private func record(
        _ chunk: PrefixChunk, holder: PrefixCacheMap.Holder, pool: Int, now: Double, in s: inout Storage
    ) {
        if s.pools[pool].prefixes == nil {
            s.pools[pool].prefixes = PrefixCacheMap(
                capacity: self.affinity.entriesPerPool, ttl: self.affinity.ttlSeconds,
                holdersPerEntry: self.affinity.holdersPerEntry)
        }
        s.pools[pool].prefixes!.record(chunk, holder: holder, now: now)
        s.pools[pool].prefixes!.expire(now: now, budget: 4)
    }

    /// Takes a slot on a car the decision chose, for one attempt. The lease carries the choice's
    /// prediction: the predictor does not run again (one decision, one prediction, one lease).
    ///
    /// - Parameters:
    ///   - choice: a car choice from ``decide(_:central:excluding:now:limit:)`` (or ``evaluate(_:for:now:)``).
    ///   - request: the request it was decided for (its zone and model are checked again).
    ///   - now: seconds on the caller's clock.
    /// - Returns: the lease, to be handed to ``finish(_:_:now:)`` exactly once; nil for a central
    ///   choice, or when the car has no room, is gone, or (a race with a telemetry update) is no
    ///   longer eligible.
    public func acquire(_ choice: Choice, for request: RequestProfile, now: Double) -> Lease? {
        guard let id = choice.car else { return nil }
        return self.storage.withLock { s in
            // A warming-up car is checked again here: a choice ranked while it was idle, taken later by a
            // retry or a hedge, or by another loop's request in the same instant, would pile jobs on it
            // (helper-76).
            guard var car = s.car(id), Int(car.inFlight) < car.jobLimit, !car.draining,
                !car.isHeldBack(now: now) || choice.slowStartWaived,
                s.zoneIndex[request.zone] == car.zone, let model = s.modelIndex[request.model],
                s.offerIndex(id.slot, model: model) != nil
            else { return nil }
            car.inFlight += 1
            s.cars[id.slot] = car
            self.reindex(id.slot, in: &s)
            let remembers = self.affinity.enabled && car.cachesPrefixes
            return Lease(
                car: id, model: request.model, startedAt: now, concurrency: Int(car.inFlight),
                promptTokens: request.promptTokens, predictedTTFTMilliseconds: choice.predictedTTFTMilliseconds,
                predictedTPOTMilliseconds: choice.predictedTPOTMilliseconds,
                predictedRTTMilliseconds: choice.predictedRTTMilliseconds,
                predictedQueueMilliseconds: choice.predictedQueueMilliseconds,
                prefix: remembers ? request.prefixes.last : nil,
                cachedPrefixTokens: remembers ? choice.cachedPrefixTokens : 0, carWarmingUp: !car.proven)
        }
    }

    /// Whether a car is held back (``Car/isHeldBack(now:)``: in its slow start and holding a job, or
    /// just after a lost hedge race): a choice of it not waived is refused by ``acquire(_:for:now:)``,
    /// and the next decision may still offer it.
    public func isHeldBack(_ id: CarID, now: Double) -> Bool {
        self.storage.withLock { s in s.car(id)?.isHeldBack(now: now) ?? false }
    }

    /// A job's first token arrived: its car's slow start (``Car/isWarmingUp``) is over, at once rather
    /// than when the job ends. Only leases taken during the slow start need it (``Lease/carWarmingUp``).
    public func firstToken(_ lease: Lease) {
        guard lease.carWarmingUp else { return }
        self.storage.withLock { s in
            guard var car = s.car(lease.car), !car.proven else { return }
            car.proven = true
            s.cars[lease.car.slot] = car
        }
    }

    /// One car as a decision would see it for `request`, without the per-request filters: for
    /// tests, benchmarks and the admin API, which address a car directly.
    /// - Returns: a car choice for ``acquire(_:for:now:)``; nil when the car is gone or does not
    ///   serve the request's model in its zone.
    public func evaluate(_ id: CarID, for request: RequestProfile, now: Double) -> Choice? {
        self.storage.withLock { s in
            guard let car = s.car(id), s.zoneIndex[request.zone] == car.zone,
                let model = s.modelIndex[request.model], let index = s.offerIndex(id.slot, model: model)
            else { return nil }
            let p = self.predictor.predict(
                car, offer: s.offer(id.slot, index), request: request, churnHazard: s.churn.hazard, now: now)
            return Choice(
                route: .car(id), predictedTTFTMilliseconds: p.ttft, predictedTPOTMilliseconds: p.tpot, score: p.score,
                predictedRTTMilliseconds: p.rtt, predictedQueueMilliseconds: p.queue,
                advertisedTTFTMilliseconds: p.advertisedTTFT, slowStartWaived: true)
        }
    }

    /// A car's runtime answered a request with a 5xx before any token, and another car then served
    /// that request: the error was the car's, not the request's — a failure, as any other. A poison
    /// request — one that every runtime answers with a 500 — is served by no car and so never reported
    /// (helper-80: tried on three cars, it benched all three, and the zone's next request got a 503);
    /// its jobs were returned with ``finish(_:_:now:)`` as saying nothing. (helper-84: a grace of three
    /// in a row let a runtime that failed every other request escape its back-off for good.)
    @discardableResult
    public func blameRuntimeError(_ id: CarID, now: Double) -> CarHealthNews? {
        self.storage.withLock { s in
            guard var car = s.car(id) else { return nil }
            let news = Self.fail(&car, now: now)
            s.cars[id.slot] = car
            self.reindex(id.slot, in: &s)
            return news
        }
    }

    /// A lost hedge race: the car's first token would have come after `waited` ms, a lower bound of its
    /// time to first token. It raises the learned prefill slowdown and the peak EWMA where it is above
    /// them, and says nothing where it is not, so a car whose jobs are all rescued by hedges is learnt
    /// as slow rather than staying as fast as it advertises (helper-87); its hedge delay, a multiple of
    /// the prediction, then grows until it serves and shows its real speed.
    private static func learnLowerBound(
        _ waited: Double, of lease: Lease, car: inout Car, offer: inout Offer, predictor: LatencyPredictor, now: Double
    ) {
        let sharing = 1 + predictor.prefillContention * Double(min(lease.concurrency - 1, car.slots))
        let advertised = 1_000 * Double(max(1, lease.promptTokens)) / max(1, offer.prefillTokensPerSecond) * sharing
        let compute = waited - lease.predictedRTTMilliseconds + car.rtt.deviation - lease.predictedQueueMilliseconds
        let ratio = compute / advertised
        // Counted as an observation, so each bound weighs less than the one before, as observations do
        // (not counting it kept each at half weight and the doubt at its prior: the predicted TTFT, and
        // the hedge delay, then grew so fast that a request on a runtime answering 500 after 3 s waited
        // 1.5 s for its hedge instead of 0.46 s; helper-89 asked, the runs answered).
        if ratio > 0, log(ratio) > offer.learned.prefillLogSlowdown {
            offer.learned.observePrefill(ratio, learningRate: predictor.learningRate)
        }
        if waited > car.peak.cost { car.peak.observe(waited, now: now) }
    }

    /// One failure of `car`: counted, and an exponential back-off (0.5 s … 30 s); news when the count
    /// reaches a mark (``CarHealthNews/marks(_:)``).
    private static func fail(_ car: inout Car, now: Double) -> CarHealthNews? {
        car.consecutiveFailures += 1
        let backoff = min(30, 0.25 * Double(1 << min(Int(car.consecutiveFailures), 7)))
        car.backoffUntil = now + backoff
        let count = Int(car.consecutiveFailures)
        return CarHealthNews.marks(count) ? .failing(inARow: count, backoffSeconds: backoff) : nil
    }

    /// Returns a lease's slot with its attempt's outcome — the one place an outcome is reported —
    /// and learns from it: the compute part of the observed
    /// time to first token against the advertised prefill rate, the observed time per token against
    /// the class curve at the job's concurrency, the job's duration, and Finagle's peak EWMA. A
    /// failure backs the car off exponentially, so a car that fails fast does not look idle and
    /// attract more work.
    @discardableResult
    public func finish(_ lease: Lease, _ outcome: Outcome, now: Double) -> CarHealthNews? {
        self.storage.withLock { s in
            guard var car = s.car(lease.car) else { return nil }
            var news: CarHealthNews?
            car.inFlight = max(0, car.inFlight - 1)
            if let busy = outcome.busySeconds {
                // Busy, not broken (a runtime at its own limit): a flat back-off, no failure counted.
                car.backoffUntil = max(car.backoffUntil, now + min(30, max(1, busy)))
            } else if outcome.succeeded {
                // A job cancelled before its first token (a hedge's loser, a client gone) says nothing
                // of the car's health: it neither fails nor clears its record (helper-72: a silent car's
                // cancelled jobs counted as successes and ended its back-off).
                if outcome.ttftMilliseconds != nil || outcome.outputTokens > 0 {
                    if car.consecutiveFailures >= CarHealthNews.firstMark {
                        news = .recovered(afterFailures: Int(car.consecutiveFailures))
                    }
                    car.consecutiveFailures = 0
                    car.proven = true
                    car.racesLost = 0
                    car.passedOverUntil = 0
                } else if outcome.lostRaceAfterMilliseconds != nil {
                    // It had run longer than the attempt that beat it needed, and had no token: passed
                    // over for a while — not backed off, since it may only be slow and a slow answer
                    // beats a 503 when nothing else is free (helper-88).
                    car.racesLost += 1
                    car.passedOverUntil = now + min(30, 0.25 * Double(1 << min(Int(car.racesLost), 7)))
                }
            } else {
                news = Self.fail(&car, now: now)
            }
            if self.predictor.learns, let model = s.modelIndex[lease.model],
                let index = s.offerIndex(lease.car.slot, model: model)
            {
                var offer = index == 0 ? car.primary : s.offer(lease.car.slot, index)
                let rate = self.predictor.learningRate
                if let ttft = outcome.ttftMilliseconds {
                    let prompt = Double(max(1, outcome.promptTokens ?? lease.promptTokens))
                    let sharing =
                        1 + self.predictor.prefillContention * Double(min(lease.concurrency - 1, car.slots))
                    let advertised = 1_000 * prompt / max(1, offer.prefillTokensPerSecond) * sharing
                    // What the RTT and the queue do not explain is the car's prefill (at least 10 % of advertised).
                    let compute = max(
                        0.1 * advertised,
                        ttft - lease.predictedRTTMilliseconds + car.rtt.deviation
                            - lease.predictedQueueMilliseconds)
                    var expected = advertised
                    if lease.cachedPrefixTokens > 0 {
                        // A held prefix: a hit if the prefill looks like the uncached rest's, a miss if
                        // like the whole prompt's (at the learned slowdown); the slowdown learns from
                        // the prompt the car was judged to have prefilled. Too close to call: no verdict.
                        let rest = advertised * max(1, prompt - Double(lease.cachedPrefixTokens)) / prompt
                        if advertised / rest >= 1.5 {
                            let slowdown = offer.learned.prefillSlowdown
                            let hit =
                                abs(log(compute / (rest * slowdown))) < abs(log(compute / (advertised * slowdown)))
                            car.hits.observe(hit: hit, learningRate: self.affinity.hitLearningRate)
                            if hit { expected = rest }
                        } else {
                            expected = advertised - car.hits.probability * (advertised - rest)
                        }
                    }
                    offer.learned.observePrefill(compute / expected, learningRate: rate)
                    car.peak.observe(ttft, now: now)
                } else if let waited = outcome.lostRaceAfterMilliseconds {
                    Self.learnLowerBound(
                        waited, of: lease, car: &car, offer: &offer, predictor: self.predictor, now: now)
                } else if !outcome.succeeded {
                    car.peak.observe(max(car.peak.cost * 2, 1_000), now: now)
                }
                if let tpot = outcome.tpotMilliseconds, outcome.outputTokens >= 2 {
                    let concurrency = min(lease.concurrency, car.slots)
                    let advertised =
                        1_000 / max(0.1, offer.decodeRate(activeStreams: concurrency, hardware: car.hardware))
                    offer.learned.observeDecode(tpot / advertised, learningRate: rate)
                }
                if index == 0 { car.primary = offer } else { s.setOffer(lease.car.slot, index, offer) }
            }
            if let chunk = lease.prefix, outcome.ttftMilliseconds != nil, let model = s.modelIndex[lease.model],
                let index = s.offerIndex(lease.car.slot, model: model)
            {
                // It prefilled the whole prompt: its runtime now holds it (until evicted).
                let pool = Int(index == 0 ? car.primary.pool : s.offer(lease.car.slot, index).pool)
                self.record(
                    chunk, holder: .init(id: lease.car.rawValue, epoch: car.cacheEpoch), pool: pool, now: now, in: &s)
            }
            if outcome.succeeded {
                let seconds = max(0, now - lease.startedAt)
                car.meanJobSeconds = car.meanJobSeconds == 0 ? seconds : 0.8 * car.meanJobSeconds + 0.2 * seconds
            }
            s.cars[lease.car.slot] = car
            self.reindex(lease.car.slot, in: &s)
            return news
        }
    }
}
