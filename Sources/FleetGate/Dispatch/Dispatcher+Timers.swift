import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

/// The per-attempt timers: first token, total, hedge, the inter-token watchdog, and a departing car.
extension Dispatcher {
    /// Arms an attempt's timers: those that end at its first token, and its total deadline.
    func armTimers(
        for open: DispatchStateMachine.Open, lease: AttemptLease
    ) -> (beforeFirstToken: [Scheduled<Void>], total: Scheduled<Void>) {
        let loop = self.stream.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let id = open.attempt
        let configuration = self.core.configuration
        var timers: [Scheduled<Void>] = []
        timers.append(
            loop.scheduleTask(in: configuration.firstTokenTimeout) {
                bound.value.attemptFailed(id, .init(retryable: true, label: "first_token_timeout"), onlyBeforeFirstToken: true)
            })
        let total = loop.scheduleTask(in: configuration.attemptTimeout) {
            bound.value.attemptFailed(id, .init(retryable: true, label: "total_timeout"))
        }
        if configuration.hedging, open.reason == .initial || open.reason == .retry,
            let predicted = lease.predictedTTFTMilliseconds
        {
            let delay = max(configuration.minimumHedgeDelay, .nanoseconds(Int64(predicted * configuration.hedgeFactor * 1e6)))
            timers.append(
                loop.scheduleTask(in: delay) {
                    let handler = bound.value
                    let allowed = handler.core.hedgeBudget.tryWithdraw()
                    handler.perform(handler.machine.hedgeTimerFired(id, budgetAllows: allowed))
                })
        }
        return (timers, total)
    }

    /// Arms (or re-arms) the inter-token watchdog of an attempt that has produced tokens.
    func armWatchdog(_ id: Int) {
        guard let attempt = self.attempts[id], attempt.watchdog == nil else { return }
        let limit = self.interTokenLimit(attempt)
        let bound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        attempt.watchdog = self.stream.eventLoop.scheduleTask(in: limit) { bound.value.watchdogFired(id) }
        self.attempts[id] = attempt
    }

    func interTokenLimit(_ attempt: Attempt) -> TimeAmount {
        let floor = self.core.configuration.interTokenTimeout
        guard let tpot = attempt.lease.predictedTPOTMilliseconds else { return floor }
        return max(floor, .nanoseconds(Int64(10 * tpot * 1e6)))
    }

    func watchdogFired(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        attempt.watchdog = nil
        self.attempts[id] = attempt
        let limit = self.interTokenLimit(attempt)
        let idle = NIODeadline.now() - (attempt.lastTokenAt ?? attempt.startedAt)
        // A stream held back by a slow client is not a stalled car.
        if idle >= limit && attempt.unconsumed == 0 {
            return self.attemptFailed(id, .init(retryable: true, label: "inter_token_timeout"))
        }
        self.armWatchdog(id)
    }

    /// The attempt's car announced it leaves in `secondsLeft`: can the attempt finish before?
    func carDeparting(_ id: Int, secondsLeft: Double) {
        guard let attempt = self.attempts[id], !self.ended else { return }
        let remaining = Double(max(0, self.request.profile.expectedOutputTokens - self.relay.deliveredTokens))
        var perToken = attempt.lease.predictedTPOTMilliseconds ?? 100
        if let first = attempt.firstTokenAt, let last = attempt.lastTokenAt, attempt.tokens >= 2 {
            perToken = Double((last - first).nanoseconds) / 1e6 / Double(attempt.tokens - 1)
        }
        // A margin of one second and a quarter: a stream that would finish just as the car leaves moves.
        let canFinish = remaining * perToken * 1.25 + 1_000 < secondsLeft * 1_000
        self.logger.debug(
            "Car departing",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(id)",
                "fleet.departure.seconds": "\(secondsLeft)", "fleet.can.finish": "\(canFinish)",
            ])
        self.perform(self.machine.departing(id, canFinish: canFinish))
    }
}
