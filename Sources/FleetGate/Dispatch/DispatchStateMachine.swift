/// The life of one request after validation, without I/O: which upstream attempts run, which one
/// the client hears, and when the request ends.
///
/// Responsibilities (DESIGN.md, "Dispatch: one state machine per request"):
/// 1. open the first attempt; retry on another candidate while nothing reached the client
///    (a failure before the first token is invisible to it), up to ``Configuration/maxAttempts``;
/// 2. hedge: when the hedge timer of the only attempt fires before its first token, open a second
///    attempt; the first real token wins and every other attempt is cancelled at once;
/// 3. mid-stream failover: when the attempt the client hears dies after tokens reached the client,
///    open a continuation from the tokens already delivered, up to ``Configuration/maxMigrations``,
///    and only when the request can be continued (``Configuration/continuable``); a request whose
///    client has heard nothing yet (``Configuration/restartable``: `stream: false`) that cannot be
///    continued starts again from nothing instead, once;
/// 4. proactive migration: a car that announces it will leave before the job ends is replaced by
///    a continuation before it goes;
/// 5. finish on the committed attempt's end; fail with a reason the adapter maps to an OpenAI
///    error (a JSON answer before the response head, the SSE error event after it);
/// 6. cancel every open attempt when the client goes away or the request ends.
///
/// Events that no longer apply — a late token from a cancelled hedge, a failure after the finish,
/// a second first token in the same tick — return ``Action/none``: the adapter never needs to
/// know which races are harmless. Time never enters: timers are the adapter's, their firing is an
/// event, so every decision is a function of the events alone and testable without sockets.
package struct DispatchStateMachine: Sendable {
    /// Identifies one attempt of a request: 1, 2, 3, … in the order they were opened.
    package typealias AttemptID = Int

    /// Bounds and switches, fixed per request.
    package struct Configuration: Sendable, Hashable {
        /// Attempts opened before the client heard a token (first try, retries and hedges).
        package var maxAttempts: Int
        /// Continuations after the client heard a token.
        package var maxMigrations: Int
        /// Whether a second attempt may race a slow first token.
        package var hedging: Bool
        /// Whether the request's state can be carried to another upstream (false for `n > 1`,
        /// tool calls, schema-bound output or logprobs).
        package var continuable: Bool
        /// Whether the client hears nothing until the answer is whole (`stream: false`): when the
        /// answer it was to get is lost and cannot be continued, it can start again from nothing.
        package var restartable: Bool

        package init(maxAttempts: Int, maxMigrations: Int, hedging: Bool, continuable: Bool, restartable: Bool = false)
        {
            self.maxAttempts = maxAttempts
            self.maxMigrations = maxMigrations
            self.hedging = hedging
            self.continuable = continuable
            self.restartable = restartable
        }
    }

    /// Why an attempt is opened.
    package enum OpenReason: Sendable, Hashable {
        case initial
        /// The previous attempt failed before the client heard anything.
        case retry
        /// The only attempt is slow to its first token.
        case hedge
        /// The attempt the client hears failed; continue from the delivered tokens.
        case failover
        /// The car serving the stream announced it will leave before the job can end.
        case departure
        /// The answer a `stream: false` client was to get was lost and cannot be continued (nothing
        /// reached the client): start it again from nothing. The adapter drops what it kept of it.
        case restart
    }

    /// An attempt to open: the adapter takes the next candidate and opens it, or reports
    /// ``DispatchStateMachine/noCandidate(_:)`` when none is left.
    package struct Open: Sendable, Hashable {
        package var attempt: AttemptID
        /// Tokens the client already has: the continuation starts after them.
        package var resumeFrom: Int
        package var reason: OpenReason

        package init(attempt: AttemptID, resumeFrom: Int, reason: OpenReason) {
            self.attempt = attempt
            self.resumeFrom = resumeFrom
            self.reason = reason
        }
    }

    /// How an attempt failed, as the adapter saw it.
    package struct Failure: Sendable, Hashable {
        /// Whether another upstream may produce the answer (a refused stream, a lost car, a
        /// deadline) or not (the upstream rejected the request itself: a 4xx).
        package var retryable: Bool
        /// A bounded label for metrics and logs (`car_reset`, `ping_timeout`, `status_4xx`, …).
        package var label: String
        /// The upstream's HTTP status when it answered with an error before any token.
        package var status: Int?
        /// Whether the failure says something about the upstream's health: not when the request asked
        /// for what its kind cannot carry (a car's runtime answering a tool call), nor when the
        /// upstream rejected the request itself (``status``).
        package var upstreamAtFault: Bool

        package init(retryable: Bool, label: String, status: Int? = nil, upstreamAtFault: Bool = true) {
            self.retryable = retryable
            self.label = label
            self.status = status
            self.upstreamAtFault = upstreamAtFault && status == nil
        }
    }

    /// Why the request failed; the adapter turns it into an OpenAI-shaped error.
    package enum FailureReason: Sendable, Hashable {
        /// No candidate could even be tried.
        case noCapacity
        /// Every attempt failed before the first token.
        case attemptsExhausted(lastLabel: String)
        /// The upstream rejected the request (a 4xx): pass it through.
        case rejected(status: Int)
        /// Mid-stream: the bound on continuations was reached.
        case migrationLimit(lastLabel: String)
        /// Mid-stream: no candidate is left in the zone to continue on.
        case noContinuationCandidate(lastLabel: String)
        /// Mid-stream: the request's state cannot be carried to another upstream.
        case notContinuable(lastLabel: String)
    }

    /// What the adapter must do.
    package enum Action: Sendable, Hashable {
        case none
        /// Open an attempt.
        case open(Open)
        /// Cancel `cancel` (if any), then open a continuation (failover or departure).
        case migrate(cancel: AttemptID?, open: Open)
        /// This attempt's first token: it is the one the client hears from now on. Send the
        /// response head first when `sendHead`, then its held events; cancel the others.
        case commit(AttemptID, sendHead: Bool, cancel: [AttemptID])
        /// Pass this event of the committed attempt to the client.
        case forward
        /// Cancel these attempts; nothing else changes.
        case cancel([AttemptID])
        /// The committed attempt ended: end the client's stream (`[DONE]` or the JSON answer), and
        /// cancel `cancel` (a continuation that never took over).
        case finish(cancel: [AttemptID])
        /// End the request with an error; `midStream` after a first token was committed (a streamed
        /// response's head was then sent: the SSE error event, and no `[DONE]`; a `stream: false`
        /// client has had nothing yet and gets the error as its response). Cancel `cancel` first.
        case fail(FailureReason, midStream: Bool, cancel: [AttemptID])
        /// This attempt failed (it ended without a token): do what any failed attempt gets — count
        /// it, cancel its upstream, give its lease back as failed — then report it with
        /// ``DispatchStateMachine/failed(_:_:)``, whose action decides what comes next.
        case attemptFailed(AttemptID, Failure)
    }

    /// Where the request is.
    package enum Phase: Sendable, Hashable {
        case idle
        /// Attempts are open and none has produced a token.
        case awaitingFirstToken
        /// One attempt is committed and its tokens reach the client.
        case streaming
        /// The committed attempt was lost; a continuation is open and has not produced a token.
        case migrating
        case finished
    }

    package let configuration: Configuration
    package private(set) var phase: Phase = .idle
    /// Attempts open now (at most two: an attempt and its hedge, or a continuation).
    package private(set) var open: [AttemptID] = []
    /// The attempt the client hears, once one produced a token.
    package private(set) var committed: AttemptID?
    /// Tokens delivered to the client.
    package private(set) var delivered = 0
    /// Attempts opened so far (each bound counts them), including any that found no candidate.
    package private(set) var opened = 0
    /// Attempts that found no candidate (``noCandidate(_:)``): never ran.
    package private(set) var unfilled = 0
    /// Attempts that ran: what a client and the audit line are told.
    package var attemptsRun: Int { self.opened - self.unfilled }
    /// Continuations opened so far.
    package private(set) var migrations = 0
    /// Restarts opened so far (at most ``maxRestarts``).
    package private(set) var restarts = 0
    /// Restarts a request may have: one. Each is a whole new answer's work; a second lost answer
    /// ends the request.
    package static let maxRestarts = 1
    /// Whether the response head went out.
    package private(set) var headSent = false
    /// Whether a hedge was opened.
    package private(set) var hedged = false
    /// The last attempt's failure: what a request that then finds no candidate failed of.
    private var lastFailed: Failure?
    /// Its label.
    package var lastFailure: String? { self.lastFailed?.label }

    package init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Events

    /// The request is validated: open the first attempt.
    package mutating func start() -> Action {
        guard self.phase == .idle else { return .none }
        self.phase = .awaitingFirstToken
        return .open(self.newAttempt(resumeFrom: 0, reason: .initial))
    }

    /// The adapter found no candidate for an attempt the machine asked it to open.
    package mutating func noCandidate(_ attempt: AttemptID) -> Action {
        guard let index = self.open.firstIndex(of: attempt), attempt != self.committed else { return .none }
        self.open.remove(at: index)
        self.unfilled += 1
        switch self.phase {
        case .awaitingFirstToken:
            if !self.open.isEmpty { return .none }  // a hedge found nobody: the first attempt runs on
            self.phase = .finished
            // The failure that asked for this attempt, not "no candidate": that says why the request failed.
            return .fail(
                self.opened == 1 ? .noCapacity : .attemptsExhausted(lastLabel: self.lastFailure ?? "no_candidate"),
                midStream: false, cancel: [])
        case .migrating:
            self.migrations -= 1  // the continuation never ran
            if self.lastFailed?.retryable ?? true, let restart = self.restart() { return .open(restart) }
            self.phase = .finished
            return .fail(
                .noContinuationCandidate(lastLabel: self.lastFailure ?? "no_candidate"), midStream: true,
                cancel: self.drain())
        case .streaming:
            // A departure's continuation found nobody: the departing car goes on as long as it can.
            self.migrations -= 1  // the continuation never ran
            return .none
        case .idle, .finished:
            return .none
        }
    }

    /// An attempt produced its first token (content, or a finish reason).
    package mutating func firstToken(_ attempt: AttemptID) -> Action {
        guard self.open.contains(attempt) else { return .none }
        switch self.phase {
        case .awaitingFirstToken, .migrating:
            let losers = self.open.filter { $0 != attempt }
            self.open = [attempt]
            self.committed = attempt
            self.phase = .streaming
            self.delivered += 1
            let sendHead = !self.headSent
            self.headSent = true
            return .commit(attempt, sendHead: sendHead, cancel: losers)
        case .streaming:
            if attempt == self.committed { return self.token(attempt) }
            // A departure's continuation produced a token while the departing car still streams:
            // the continuation takes over from here.
            let previous = self.committed
            self.open = [attempt]
            self.committed = attempt
            self.delivered += 1
            return .commit(attempt, sendHead: false, cancel: previous.map { [$0] } ?? [])
        case .idle, .finished:
            return .none
        }
    }

    /// A later token of an attempt.
    package mutating func token(_ attempt: AttemptID) -> Action {
        guard self.phase == .streaming, attempt == self.committed else { return .none }
        self.delivered += 1
        return .forward
    }

    /// Whether a token of `attempt` would be forwarded (``token(_:)`` answers `.forward`): it is the
    /// committed attempt of a stream in progress.
    package func forwards(_ attempt: AttemptID) -> Bool {
        self.phase == .streaming && attempt == self.committed
    }

    /// `count` tokens of the committed attempt, already forwarded (a run the relay passed through, all
    /// at once): counted as ``token(_:)`` counts each. Nothing when it does not ``forwards(_:)``.
    package mutating func forwarded(_ count: Int, of attempt: AttemptID) {
        guard self.forwards(attempt) else { return }
        self.delivered += count
    }

    /// An attempt's upstream ended cleanly (`[DONE]`, or the end of its stream after a finish).
    package mutating func finished(_ attempt: AttemptID) -> Action {
        guard self.open.contains(attempt) else { return .none }
        if self.phase == .streaming && attempt == self.committed {
            self.phase = .finished
            // A departure's continuation that never took over is no longer needed.
            let others = self.drain().filter { $0 != attempt }
            return .finish(cancel: others)
        }
        // An attempt that ends without a single token did not answer: it failed like any other,
        // and the adapter's bookkeeping for a failure comes before the machine hears of it.
        return .attemptFailed(attempt, Self.emptyStream)
    }

    /// The failure of an attempt whose car leaves before its first token, with no time to answer.
    /// Not the car's fault: leaving is what cars do (helper-113: two announced departures left a car two
    /// failures in a row and backed off, held against it until its next success).
    package static let departingFailure = Failure(retryable: true, label: "departing", upstreamAtFault: false)

    /// The failure of an attempt whose upstream ended cleanly without a token.
    package static let emptyStream = Failure(retryable: true, label: "empty_stream")

    /// An attempt failed: refused, reset, lost with its car, past a deadline, or answered an error.
    /// `continuable`: whether what was delivered can be continued from, as the adapter knows it —
    /// not when a `stream: false` answer holds only a reasoning model's thinking and no text (a
    /// continuation would think again after it; a restart gives one answer).
    package mutating func failed(_ attempt: AttemptID, _ failure: Failure, continuable: Bool = true) -> Action {
        guard let index = self.open.firstIndex(of: attempt) else { return .none }
        self.open.remove(at: index)
        self.lastFailed = failure
        switch self.phase {
        case .awaitingFirstToken:
            if !self.open.isEmpty { return .none }  // its hedge (or the attempt it hedged) runs on
            if !failure.retryable, let status = failure.status {
                self.phase = .finished
                return .fail(.rejected(status: status), midStream: false, cancel: [])
            }
            guard failure.retryable, self.opened < self.configuration.maxAttempts else {
                self.phase = .finished
                return .fail(.attemptsExhausted(lastLabel: failure.label), midStream: false, cancel: [])
            }
            return .open(self.newAttempt(resumeFrom: 0, reason: .retry))
        case .streaming where attempt == self.committed, .migrating:
            self.committed = nil
            if self.phase == .streaming && !self.open.isEmpty {
                // A departure's continuation is already running: it takes over.
                self.phase = .migrating
                return .none
            }
            if continuable, let next = self.continuation(after: failure, reason: .failover) {
                self.phase = .migrating
                return .migrate(cancel: nil, open: next)
            }
            if failure.retryable, let restart = self.restart() { return .open(restart) }
            self.phase = .finished
            return .fail(self.midStreamReason(failure), midStream: true, cancel: self.drain())
        case .streaming:
            // A departure's continuation failed before its first token: the departing car goes on.
            return .none
        case .idle, .finished:
            return .none
        }
    }

    /// Whether `attempt`'s hedge timer would open a hedge now, budget aside: the adapter asks before it
    /// spends a token of the gateway-wide budget.
    package func canHedge(_ attempt: AttemptID) -> Bool {
        self.phase == .awaitingFirstToken && self.configuration.hedging && !self.hedged && self.open == [attempt]
            && self.opened < self.configuration.maxAttempts
    }

    /// The hedge timer of an attempt fired. `budgetAllows` is the gateway-wide hedge budget's answer.
    package mutating func hedgeTimerFired(_ attempt: AttemptID, budgetAllows: Bool) -> Action {
        guard budgetAllows, self.canHedge(attempt) else { return .none }
        self.hedged = true
        return .open(self.newAttempt(resumeFrom: 0, reason: .hedge))
    }

    /// The car serving `attempt` announced it leaves; `canFinish` says whether the time it has left
    /// covers the attempt's predicted remaining tokens.
    package mutating func departing(_ attempt: AttemptID, canFinish: Bool) -> Action {
        guard self.open.contains(attempt) else { return .none }
        switch self.phase {
        case .awaitingFirstToken, .migrating:
            if canFinish { return .none }
            // Failed like any other attempt: the adapter closes it (its car stops) before the retry.
            return .attemptFailed(attempt, Self.departingFailure)
        case .streaming:
            guard attempt == self.committed, !canFinish, self.open.count == 1,
                let next = self.continuation(after: nil, reason: .departure)
            else { return .none }
            // The departing car keeps streaming until the continuation's first token takes over.
            return .open(next)
        case .idle, .finished:
            return .none
        }
    }

    /// The client went away: cancel everything.
    package mutating func clientGone() -> Action {
        guard self.phase != .finished else { return .none }
        self.phase = .finished
        self.committed = nil
        let open = self.drain()
        return open.isEmpty ? .none : .cancel(open)
    }

    // MARK: Helpers

    private mutating func newAttempt(resumeFrom: Int, reason: OpenReason) -> Open {
        self.opened += 1
        self.open.append(self.opened)
        return Open(attempt: self.opened, resumeFrom: resumeFrom, reason: reason)
    }

    /// A continuation from the delivered tokens, when the bound and the request allow one.
    private mutating func continuation(after failure: Failure?, reason: OpenReason) -> Open? {
        guard self.configuration.continuable, self.migrations < self.configuration.maxMigrations else { return nil }
        self.migrations += 1
        return self.newAttempt(resumeFrom: self.delivered, reason: reason)
    }

    /// The answer starts again from nothing, when the client has heard nothing of it
    /// (``Configuration/restartable``), no attempt is open, and no restart was made yet: the
    /// request waits for a first token again.
    private mutating func restart() -> Open? {
        guard self.configuration.restartable, self.restarts < Self.maxRestarts, self.open.isEmpty else { return nil }
        self.restarts += 1
        self.phase = .awaitingFirstToken
        self.committed = nil
        self.delivered = 0
        self.headSent = false  // a `stream: false` client was sent nothing
        return self.newAttempt(resumeFrom: 0, reason: .restart)
    }

    private func midStreamReason(_ failure: Failure) -> FailureReason {
        if !self.configuration.continuable { return .notContinuable(lastLabel: failure.label) }
        return .migrationLimit(lastLabel: failure.label)
    }

    private mutating func drain() -> [AttemptID] {
        defer { self.open.removeAll() }
        return self.open
    }
}
