import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

/// The per-attempt deadlines (first token, total, hedge, the inter-token watchdog) on one timer, and a departing car.
extension Dispatcher {
    /// An attempt's deadlines, from its start: first token, total, hedge (for a first attempt or a
    /// retry, when hedging is on and the lease predicts a TTFT) and the inter-token watchdog.
    ///
    /// A whole answer (`wholeAnswer`: central asked for `stream: false`) is its first token: its
    /// deadline is the longest a stream of the request's `max_tokens` could take without failing —
    /// the first token's timeout and then the inter-token limit per token — within the total (the
    /// total alone without `max_tokens`); it is never hedged (a hedge races a slow first token, and
    /// here it would race, and pay for, a whole second generation).
    func deadlines(
        for open: DispatchStateMachine.Open, lease: AttemptLease, start: NIODeadline, wholeAnswer: Bool = false
    ) -> AttemptDeadlines {
        let live = self.core.liveConfiguration  // one key at a time, not a copy of them all
        let interTokenLimit = self.interTokenLimit(lease)
        var hedgeDelay: TimeAmount?
        var firstTokenTimeout = AttemptDeadlines.firstTokenTimeout(
            configured: live.configuration.firstTokenTimeout, predictedMilliseconds: lease.predictedTTFTMilliseconds,
            total: live.configuration.attemptTimeout)
        if wholeAnswer {
            firstTokenTimeout = AttemptDeadlines.wholeAnswerTimeout(
                firstTokenTimeout: firstTokenTimeout, interTokenLimit: interTokenLimit,
                maxTokens: self.request.outputLimit, total: live.configuration.attemptTimeout)
        } else if live.configuration.hedging,
            open.reason == .initial || open.reason == .retry || open.reason == .restart,
            let predicted = lease.predictedTTFTMilliseconds
        {
            hedgeDelay = max(
                live.configuration.minimumHedgeDelay,
                .nanoseconds(Int64(predicted * live.configuration.hedgeFactor * 1e6)))
        }
        return AttemptDeadlines(
            start: start, firstTokenTimeout: firstTokenTimeout, totalTimeout: live.configuration.attemptTimeout,
            interTokenLimit: interTokenLimit, hedgeDelay: hedgeDelay)
    }

    /// Arms the attempt's one timer at its next deadline, unless it is armed for that time or earlier.
    func armTimer(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        let next = attempt.deadlines.next(attempt.progress)
        if let armed = attempt.timerDeadline, attempt.timer != nil, armed <= next { return }
        if let timer = attempt.timer { self.timers.cancel(timer) }
        // On the loop's timers, not NIO's: nearly every one is cancelled before it is due (issue #19).
        attempt.timer = self.timers.schedule(at: next, self, tag: id)
        attempt.timerDeadline = next
    }

    /// An attempt's next deadline came (the tag is the attempt's id).
    func loopTimerFired(_ tag: Int) {
        self.timerFired(tag)
    }

    func timerFired(_ id: Int) {
        guard let attempt = self.attempts[id], !self.ended else { return }
        attempt.timer = nil
        for due in attempt.deadlines.due(at: .now(), attempt.progress) {
            switch due {
            case .total: return self.attemptFailed(id, .init(retryable: true, label: "total_timeout"))
            case .firstToken:
                let label = attempt.answer == nil ? "first_token_timeout" : "answer_timeout"
                return self.attemptFailed(id, .init(retryable: true, label: label))
            case .interToken: return self.attemptFailed(id, .init(retryable: true, label: "inter_token_timeout"))
            case .hedge:
                // A token is spent only on a hedge the machine would open (helper-87: a retry's timer after
                // the request had hedged spent one for nothing).
                let allowed = self.machine.canHedge(id) && self.core.hedgeBudget.tryWithdraw()
                self.perform(self.machine.hedgeTimerFired(id, budgetAllows: allowed))
            }
        }
        self.armTimer(id)
    }

    func interTokenLimit(_ lease: AttemptLease) -> TimeAmount {
        let floor = self.core.configuration.interTokenTimeout
        guard let tpot = lease.predictedTPOTMilliseconds else { return floor }
        return max(floor, .nanoseconds(Int64(10 * tpot * 1e6)))
    }

    /// The attempt's car announced it leaves in `secondsLeft`: can the attempt finish before?
    func carDeparting(_ id: Int, secondsLeft: Double) {
        guard let attempt = self.attempts[id], !self.ended else { return }
        // A whole answer waiting for its `[DONE]` has nothing left to move (helper-112: a migration was
        // counted, and trailers sent, for a continuation that never served).
        guard !self.relay.deliveredFinish, !self.relay.reachedOutputLimit else { return }
        attempt.departsAt = .now() + .nanoseconds(Int64(max(0, secondsLeft) * 1e9))
        let canFinish = self.canFinish(attempt, secondsLeft: secondsLeft)
        self.logger.debug(
            "Car departing",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(id)",
                "fleet.departure.seconds": "\(secondsLeft)", "fleet.can.finish": "\(canFinish)",
            ])
        self.perform(self.machine.departing(id, canFinish: canFinish))
    }

    /// Whether `attempt`'s predicted remaining tokens fit in `secondsLeft`, with a margin of a quarter and
    /// one second: a stream that would finish just as its car leaves moves.
    func canFinish(_ attempt: Attempt, secondsLeft: Double) -> Bool {
        let remaining = Double(max(0, self.request.profile.expectedOutputTokens - self.relay.deliveredTokens))
        var perToken = attempt.lease.predictedTPOTMilliseconds ?? 100
        if let first = attempt.firstTokenAt, let last = attempt.lastTokenAt, attempt.tokens >= 2 {
            perToken = Double((last - first).nanoseconds) / 1e6 / Double(attempt.tokens - 1)
        }
        return remaining * perToken * 1.25 + 1_000 < secondsLeft * 1_000
    }
}

/// An admitted request waiting for a slot in a busy zone (``CapacityWait``).
extension Dispatcher {
    /// Asks for `open`'s candidate again after `delay`.
    func waitForCapacity(_ open: DispatchStateMachine.Open, _ delay: TimeAmount) {
        guard
            let timer = try? self.stream.eventLoop.assumeIsolated().scheduleCallback(
                in: delay, handler: CapacityTimer(dispatcher: self))
        else { return self.perform(self.machine.noCandidate(open.attempt)) }
        if !self.waitCounted {
            // Once a wait, not at each 100 ms ask (helper-130: ten lines a second a waiting request).
            self.logger.debug(
                "Waiting for capacity",
                metadata: [
                    "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(open.attempt)",
                    "fleet.attempt.reason": "\(open.reason)",
                ])
            self.waitCounted = true
            self.core.capacityWaiters.begin(
                zone: self.request.zone, model: self.request.model, needing: self.request.profile.neededContextTokens)
        }
        self.capacityWaiter = (open, timer)
    }

    /// How a wait ended.
    enum WaitEnd {
        /// A slot was found.
        case served
        /// The limit was reached with the zone still busy.
        case gaveUp
        /// Nothing in the zone serves the model any more.
        case emptied
        /// The request ended (its client went, or another attempt won), or no longer needs the slot (a
        /// departing car that now finishes in time).
        case gone
    }

    /// Ends the wait, if one runs: counted in `fleet_capacity_waits_total` and no longer yielded to.
    func stopWaiting(_ end: WaitEnd) {
        self.capacityWait.found()
        guard self.waitCounted else { return }
        self.waitCounted = false
        self.core.capacityWaiters.end(
            zone: self.request.zone, model: self.request.model, needing: self.request.profile.neededContextTokens)
        self.core.metrics.capacityWaitEnded(end)
    }

    /// No candidate for `open`: wait for a slot when the zone is only busy (``CapacityWait``), else tell the
    /// machine. A departure's continuation is not kept open while it waits: the departing car streams on, and
    /// the timer asks for a new one from what the client has then (helper-116: held open, it counted a
    /// migration and an attempt for a stream its car finished).
    func noCandidate(for open: DispatchStateMachine.Open) {
        if self.capacityWaiter == nil {
            let zoneBusy = self.candidates.zoneBusyRetryAfter != nil
            if let delay = self.capacityWait.retryDelay(reason: open.reason, zoneBusy: zoneBusy, now: .now()) {
                self.waitForCapacity(open, delay)
                // (Unless the timer could not be armed: waitForCapacity then told the machine itself.)
                if open.reason == .departure, self.capacityWaiter != nil {
                    self.perform(self.machine.noCandidate(open.attempt))
                }
                return
            }
            self.stopWaiting(zoneBusy ? .gaveUp : .emptied)
        }
        if open.reason == .retry || open.reason == .restart {
            self.retryFoundZoneBusy = self.candidates.untriedBusyRetryAfter
        }
        if open.reason == .hedge { self.core.hedgeBudget.refund() }  // nothing raced: the token goes back
        self.perform(self.machine.noCandidate(open.attempt))
    }

    /// A departure's wait gives way to any attempt the machine opens meanwhile: a departure asked for
    /// again (the car announced again) searches at once, and the failover of a car that left first waits
    /// a whole wait of its own (helper-116: it inherited what was left of the departure's).
    func supersedeDepartureWait(by open: DispatchStateMachine.Open) {
        guard let (waiting, timer) = self.capacityWaiter, waiting.reason == .departure else { return }
        timer.cancel()
        self.capacityWaiter = nil
        if open.reason != .departure { self.capacityWait.found() }
    }

    /// The wait's timer: opens the attempt again (a departure's anew), unless the request ended or no
    /// longer wants it (the client gone, a departing car that now finishes).
    func capacityTimerFired() {
        guard let (waiting, _) = self.capacityWaiter else { return }
        self.capacityWaiter = nil
        guard !self.ended else { return self.stopWaiting(.gone) }
        if waiting.reason == .departure { return self.departureWaitFired() }
        guard self.machine.open.contains(waiting.attempt) else { return self.stopWaiting(.gone) }
        self.perform(.open(waiting))
    }

    /// A departure's wait asks the machine for a new continuation, from what the client has now, while the
    /// departing car still streams, its answer is not whole (helper-116) and it cannot finish before it goes.
    private func departureWaitFired() {
        guard self.machine.phase == .streaming, let id = self.machine.committed, let departing = self.attempts[id],
            let departsAt = departing.departsAt, !self.relay.deliveredFinish, !self.relay.reachedOutputLimit,
            !self.canFinish(departing, secondsLeft: Double((departsAt - .now()).nanoseconds) / 1e9)
        else { return self.stopWaiting(.gone) }
        let action = self.machine.departing(id, canFinish: false)
        guard case .open = action else { return self.stopWaiting(.gone) }
        self.perform(action)
    }

    struct CapacityTimer: NIOScheduledCallbackHandler {
        let dispatcher: Dispatcher

        func handleScheduledCallback(eventLoop: some EventLoop) {
            self.dispatcher.capacityTimerFired()
        }
    }
}
