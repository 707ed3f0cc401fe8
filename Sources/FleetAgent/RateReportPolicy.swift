public import FleetProtocol

/// When the rates an engine measured are worth a state message to the gateway.
///
/// An engine that measures its runtime (openai-local) updates its rates after every job; a state
/// message per job was a JSON encode on the car and a decode on the gateway for every request
/// (issue #19), while the scheduler only needs to hear a rate that moved. So a report goes out
/// for the first measurement; then at most once per ``minimumInterval``, when a rate moved by more
/// than ``minimumChange`` since the last report; and for any change at all once ``refresh`` has
/// passed since it. (A runtime that bursts its tokens measures a decode rate that jumps by more
/// than 10 % from job to job: the interval is what bounds the messages then.)
package enum RateReportPolicy {
    /// The relative change that is always reported.
    package static let minimumChange = 0.10
    /// The least time between two reports after the first.
    package static let minimumInterval: Duration = .seconds(1)
    /// After this long, any change is reported.
    package static let refresh: Duration = .seconds(5)

    /// - Parameters:
    ///   - rates: the engine's rates now.
    ///   - last: the rates last reported, or nil if none were.
    ///   - elapsed: the time since that report.
    package static func shouldReport(_ rates: [ModelOffer], last: [ModelOffer]?, elapsed: Duration) -> Bool {
        guard let last else { return true }
        guard rates != last else { return false }
        if elapsed >= self.refresh { return true }
        guard elapsed >= self.minimumInterval else { return false }
        let before = Dictionary(last.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return rates.contains { offer in
            guard let old = before[offer.id] else { return true }
            return self.moved(offer.decodeTokensPerSecond, from: old.decodeTokensPerSecond)
                || self.moved(offer.prefillTokensPerSecond, from: old.prefillTokensPerSecond)
        }
    }

    /// False when ``shouldReport(_:last:elapsed:)`` is false whatever the rates are: a report was made
    /// less than ``minimumInterval`` ago. The caller need not gather the rates then.
    package static func mayReport(reportedBefore: Bool, elapsed: Duration) -> Bool {
        !reportedBefore || elapsed >= self.minimumInterval
    }

    private static func moved(_ value: Double, from old: Double) -> Bool {
        abs(value - old) > self.minimumChange * max(abs(old), .ulpOfOne)
    }
}
