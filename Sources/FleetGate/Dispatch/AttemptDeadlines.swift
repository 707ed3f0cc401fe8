package import NIOCore

/// The deadlines of one upstream attempt, kept on one timer: the first token, the hedge, the
/// attempt's total, and the inter-token watchdog.
///
/// Pure and clock-injected: the ``Dispatcher`` arms one timer at ``next(_:)``, and when it fires
/// asks ``due(at:_:)`` what has come due, then re-arms at the new ``next(_:)``. Tokens do not touch
/// the timer — the deadlines follow from the attempt's ``Progress`` — so a stream costs one timer
/// scheduled and cancelled instead of one for each deadline (NIO's cancel scans the loop's timers;
/// callgrind: ~20,000 instructions a relayed stream saved).
package struct AttemptDeadlines: Sendable, Hashable {
    /// What came due, most decisive first.
    package enum Due: Sendable, Hashable {
        /// The attempt ran out of its total time.
        case total
        /// No first token in time.
        case firstToken
        /// Tokens stopped for longer than the inter-token limit (and the client was not the cause).
        case interToken
        /// Time to start a hedge (at most once).
        case hedge
    }

    /// What the attempt has done so far.
    package struct Progress: Sendable, Hashable {
        package var firstTokenAt: NIODeadline?
        package var lastTokenAt: NIODeadline?
        /// The client is not reading: output is held back, so silence is not the upstream's fault.
        package var heldBack: Bool

        package init(firstTokenAt: NIODeadline? = nil, lastTokenAt: NIODeadline? = nil, heldBack: Bool = false) {
            self.firstTokenAt = firstTokenAt
            self.lastTokenAt = lastTokenAt
            self.heldBack = heldBack
        }
    }

    package let firstToken: NIODeadline
    package let total: NIODeadline
    package let interTokenLimit: TimeAmount
    /// Pending until it fires or the first token arrives.
    package private(set) var hedge: NIODeadline?
    /// The watchdog counts from here when later than the last token (a held-back stream restarts it).
    private var watchdogBase: NIODeadline?

    package init(
        start: NIODeadline, firstTokenTimeout: TimeAmount, totalTimeout: TimeAmount, interTokenLimit: TimeAmount,
        hedgeDelay: TimeAmount?
    ) {
        self.firstToken = start + firstTokenTimeout
        self.total = start + totalTimeout
        self.interTokenLimit = interTokenLimit
        self.hedge = hedgeDelay.map { start + $0 }
    }

    /// How many times its predicted TTFT an attempt may take to its first token, when that is longer
    /// than the configured first-token timeout.
    package static let predictedTTFTFactor = 3.0

    /// An attempt's first-token timeout: the configured one, or ``predictedTTFTFactor`` times the lease's
    /// predicted TTFT when that is longer, within `total`. A long prompt's prefill takes as long as
    /// the prediction says: with the configured 15 s alone every attempt of a prompt over ~27k tokens
    /// on an ai5 car failed (three cars tied up, then 502; helper-56).
    package static func firstTokenTimeout(
        configured: TimeAmount, predictedMilliseconds: Double?, total: TimeAmount
    ) -> TimeAmount {
        guard let predicted = predictedMilliseconds, predicted.isFinite, predicted > 0 else {
            return min(configured, total)
        }
        let fromPrediction = predicted * Self.predictedTTFTFactor * 1e6
        guard fromPrediction < Double(total.nanoseconds) else { return total }
        return min(max(configured, .nanoseconds(Int64(fromPrediction))), total)
    }

    /// The first-token timeout of an attempt that answers whole (`stream: false` on central): the longest a
    /// stream of `maxTokens` could take without failing — `firstTokenTimeout`, then `interTokenLimit` per
    /// token — within `total`; `total` without `maxTokens`.
    package static func wholeAnswerTimeout(
        firstTokenTimeout: TimeAmount, interTokenLimit: TimeAmount, maxTokens: Int?, total: TimeAmount
    ) -> TimeAmount {
        guard let maxTokens else { return total }
        let tokens = interTokenLimit.nanoseconds.multipliedReportingOverflow(by: Int64(max(1, maxTokens)))
        let stream = tokens.partialValue.addingReportingOverflow(firstTokenTimeout.nanoseconds)
        guard !tokens.overflow, !stream.overflow else { return total }
        return min(total, .nanoseconds(stream.partialValue))
    }

    /// When the watchdog would fire, once tokens flow.
    private func watchdog(_ progress: Progress) -> NIODeadline? {
        guard let last = progress.lastTokenAt ?? progress.firstTokenAt else { return nil }
        return max(last, self.watchdogBase ?? last) + self.interTokenLimit
    }

    /// The earliest deadline still pending.
    package func next(_ progress: Progress) -> NIODeadline {
        var next = self.total
        if progress.firstTokenAt == nil {
            next = min(next, self.firstToken)
            if let hedge = self.hedge { next = min(next, hedge) }
        } else if let watchdog = self.watchdog(progress) {
            next = min(next, watchdog)
        }
        return next
    }

    /// What has come due at `now`, most decisive first; a hedge is reported once. A watchdog that
    /// comes due while the client holds the stream back restarts from `now` instead.
    package mutating func due(at now: NIODeadline, _ progress: Progress) -> [Due] {
        var due: [Due] = []
        if now >= self.total { due.append(.total) }
        if progress.firstTokenAt == nil {
            if now >= self.firstToken { due.append(.firstToken) }
            if let hedge = self.hedge, now >= hedge {
                due.append(.hedge)
                self.hedge = nil
            }
        } else {
            self.hedge = nil
            if let watchdog = self.watchdog(progress), now >= watchdog {
                if progress.heldBack { self.watchdogBase = now } else { due.append(.interToken) }
            }
        }
        return due
    }
}
