package import NIOCore

/// The three time limits on one ``OpenAILocalJob``, kept by a single timer: the first token, a
/// silence from the runtime, and the whole job.
///
/// The timer is armed once at the earliest deadline and, when it fires, asks ``check(now:firstTokenAt:lastReadAt:)``
/// whether a limit really passed or progress moved the deadline on (then it is armed again). So a job
/// costs one scheduled task however many body parts arrive — not one per limit, nor a reschedule per
/// read as async-http-client's read timeout does (issue #19).
package struct RuntimeWatchdog: Sendable {
    /// How long the runtime may take to its first token.
    package var firstTokenTimeout: TimeAmount
    /// How long the runtime may send nothing once it has answered.
    package var readTimeout: TimeAmount
    /// How long the whole job may run.
    package var jobTimeout: TimeAmount
    /// When the request was sent.
    package let startedAt: NIODeadline

    package enum Verdict: Hashable, Sendable {
        /// No limit passed: arm the timer for this deadline.
        case wait(until: NIODeadline)
        /// A limit passed; the job fails with `upstream_timeout` and this message.
        case expired(String)
    }

    package init(
        firstTokenTimeout: TimeAmount, readTimeout: TimeAmount, jobTimeout: TimeAmount, startedAt: NIODeadline
    ) {
        self.firstTokenTimeout = firstTokenTimeout
        self.readTimeout = readTimeout
        self.jobTimeout = jobTimeout
        self.startedAt = startedAt
    }

    /// What the timer should do at `now`, given the first token's and the last body part's arrival.
    package func check(now: NIODeadline, firstTokenAt: NIODeadline?, lastReadAt: NIODeadline?) -> Verdict {
        let job = self.startedAt + self.jobTimeout
        if now >= job { return .expired("the job ran longer than \(self.jobTimeout)") }
        var next = job
        if firstTokenAt == nil {
            let first = self.startedAt + self.firstTokenTimeout
            if now >= first { return .expired("no token from the inference runtime within \(self.firstTokenTimeout)") }
            next = min(next, first)
        }
        let silence = (lastReadAt ?? self.startedAt) + self.readTimeout
        if now >= silence { return .expired("no data from the inference runtime for \(self.readTimeout)") }
        return .wait(until: min(next, silence))
    }
}
