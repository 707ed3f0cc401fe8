package import Logging
package import NIOCore
import Synchronization

/// Which failed jobs the agent logs: its runtime's errors, timeouts and lost connections were logged
/// nowhere on the car (helper-130, helper-131: a runtime killed, hung or answering 500 left only
/// `Tunnel connected` in the agent's log; only the gateway's operator could see it).
///
/// The first failure after a success is a warning with its code; while failures go on, one line a
/// ``summaryInterval`` counts them by code (a runtime that fails every job at the fleet's rate must
/// not flood the car's log); the first job served after failures says how many there were. A job the
/// request itself failed (a 4xx rejection: the prompt over the context, a bad parameter) is not the
/// runtime failing and is not counted. Codes only, never the runtime's message: it may quote the prompt.
package struct JobFailureLog: Sendable {
    /// The longest the log stays silent while jobs fail.
    package static let summaryInterval = TimeAmount.seconds(60)

    /// Failed jobs since the last line, by code.
    private(set) var unlogged: [String: Int] = [:]
    /// Failed jobs since the last success.
    private(set) var failuresInARow = 0
    /// When the last line was written.
    private var loggedAt: NIODeadline?

    package init() {}

    /// What to log.
    package enum Line: Equatable, Sendable {
        /// The first failure of a run.
        case firstFailure(code: String)
        /// Failures since the last line, by code, while they go on.
        case stillFailing(counts: [String: Int], inARow: Int)
        /// A job served after `failures` failed in a row.
        case recovered(failures: Int)
    }

    /// A job failed with `code` at `now`: the line to write, if any.
    package mutating func failed(code: String, at now: NIODeadline) -> Line? {
        self.failuresInARow += 1
        guard self.failuresInARow > 1, let loggedAt else {
            self.loggedAt = now
            self.unlogged = [:]
            return .firstFailure(code: code)
        }
        self.unlogged[code, default: 0] += 1
        guard now - loggedAt >= Self.summaryInterval else { return nil }
        defer {
            self.unlogged = [:]
            self.loggedAt = now
        }
        return .stillFailing(counts: self.unlogged, inARow: self.failuresInARow)
    }

    /// A job was served: the line to write, if any.
    package mutating func served() -> Line? {
        guard self.failuresInARow > 0 else { return nil }
        defer {
            self.failuresInARow = 0
            self.unlogged = [:]
            self.loggedAt = nil
        }
        return .recovered(failures: self.failuresInARow)
    }
}

/// The car's ``JobFailureLog``, shared by its jobs on every tunnel (``AgentState/jobFailures``: one run
/// of failures a car, not one a tunnel; helper-132), and the lines it asks for written to a logger.
package final class JobFailures: Sendable {
    private let state = Mutex(JobFailureLog())
    /// Whether a failure is unanswered: a served job takes the lock only then. Changed under the lock
    /// (helper-132: set outside it, a served job between the store and the lock lost its recovery line).
    private let failing = Atomic<Bool>(false)

    package init() {}

    /// A job failed with `code` (not a rejection of the request, nor a busy runtime).
    package func failed(code: String, logger: Logger) {
        let line = self.state.withLock { state in
            self.failing.store(true, ordering: .relaxed)
            return state.failed(code: code, at: .now())
        }
        if let line { Self.write(line, to: logger) }
    }

    /// A job was served.
    package func served(logger: Logger) {
        guard self.failing.load(ordering: .relaxed) else { return }
        let line = self.state.withLock { state in
            self.failing.store(false, ordering: .relaxed)
            return state.served()
        }
        if let line { Self.write(line, to: logger) }
    }

    private static func write(_ line: JobFailureLog.Line, to logger: Logger) {
        switch line {
        case .firstFailure(let code):
            logger.warning("Job failed: the runtime did not serve it", metadata: ["error.type": "\(code)"])
        case .stillFailing(let counts, let inARow):
            let byCode = counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            logger.warning(
                "Jobs still failing",
                metadata: ["fleet.jobs.failed": "\(byCode)", "fleet.failures_in_a_row": "\(inARow)"])
        case .recovered(let failures):
            logger.info("Runtime serves again", metadata: ["fleet.failures_in_a_row": "\(failures)"])
        }
    }
}
