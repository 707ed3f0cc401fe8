import CoreMetrics
import FleetGeo
import FleetHTTP1Client
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Carries out a ``DispatchStateMachine``'s decisions for one validated request, on the client
/// stream's event loop: opens upstream attempts on the leases a ``CandidateList`` hands out,
/// feeds their bytes through the ``SSERelay``, arms the per-attempt timers, writes to the
/// client, and reports each attempt's outcome to the scheduler exactly once.
///
/// Everything that is a decision — retry, hedge, failover, which attempt the client hears, when
/// to end — is the state machine's; this type only performs actions and turns I/O into events.
final class Dispatcher: UpstreamEvents, LoopTimerTarget {
    /// One open attempt. A class, so the per-token path updates it in place instead of copying it
    /// (with its arrays and buffers) out of the table and back.
    final class Attempt {
        let lease: AttemptLease
        let reason: DispatchStateMachine.OpenReason
        /// The token index the attempt starts at (a continuation's N).
        let resumeFrom: Int
        /// Tokens skipped because the client already had them (a departure's continuation
        /// catching up with the car it replaces).
        var skipped = 0
        var upstream: (any Upstream)?
        var startedAt: NIODeadline
        var firstTokenAt: NIODeadline?
        var lastTokenAt: NIODeadline?
        var tokens = 0
        var status = 0
        /// When a busy upstream (429, 503) said to come back, in seconds (``RetryAfter``).
        var retryAfter: Int?
        var errorBody = ByteBuffer()
        var unconsumed = 0
        /// First token, total, hedge and watchdog: their times, and the one timer armed for the next.
        var deadlines: AttemptDeadlines
        var timer: LoopTimers.Token?
        var timerDeadline: NIODeadline?
        /// The departure watch on the attempt's car, and when the car said it leaves (announced).
        var departureWatch: Int?, departsAt: NIODeadline?
        /// Where a forwarded attempt's replica served it (its `x-fleet-region`; cluster #21).
        var servedRegion: String?
        /// A central attempt asked for one whole answer (`stream: false`): its body so far. Nil for a
        /// streamed attempt, whose bytes go through the ``SSERelay``.
        var answer: CentralAnswer?
        /// The prompt's tokens as the upstream counted them, when it said (a whole answer's usage).
        var promptTokens: Int?
        /// Removed from the table (``Dispatcher/close(_:outcome:)``): it hears nothing more.
        var closed = false

        init(
            lease: AttemptLease, reason: DispatchStateMachine.OpenReason, resumeFrom: Int, startedAt: NIODeadline,
            deadlines: AttemptDeadlines
        ) {
            self.lease = lease
            self.reason = reason
            self.resumeFrom = resumeFrom
            self.startedAt = startedAt
            self.deadlines = deadlines
        }

        /// Whether this attempt lost a race to `winner`: a car's attempt, without a token or an answer,
        /// that started before the winner and so had longer than the winner needed for its first token.
        /// Not one whose car had already answered otherwise than 2xx (a busy or rejecting head whose end
        /// is not yet read: that answer says what it says; helper-88).
        func lostRace(to winner: Attempt) -> Bool {
            guard case .car = self.lease, self.firstTokenAt == nil, self.answer == nil else { return false }
            guard self.status == 0 || (200..<300).contains(self.status) else { return false }
            return self.startedAt < winner.startedAt
        }

        /// What the deadlines follow from.
        var progress: AttemptDeadlines.Progress {
            .init(firstTokenAt: self.firstTokenAt, lastTokenAt: self.lastTokenAt, heldBack: self.unconsumed > 0)
        }
    }

    let core: GatewayCore
    let stream: any HTTPStream
    /// The stream's loop's deadlines: the attempts' timers.
    let timers: LoopTimers
    let request: ValidatedRequest
    let requestID: String
    let route: String
    let started: NIODeadline
    let logger: RequestLogger
    /// Called once when the request ends (finished, failed or abandoned), with the client status.
    let onEnd: (Int) -> Void

    var machine: DispatchStateMachine
    var relay: SSERelay
    var candidates: CandidateList
    var attempts = AttemptMap<Attempt>()
    /// The lease of the attempt the client hears (kept after it ends, for headers and the audit line).
    var servingLease: AttemptLease?
    /// The last attempt that failed: where a request that nothing served was last tried, for its audit line.
    var lastFailedLease: AttemptLease?
    /// Where the replica of a forwarded serving attempt served it (cluster #21).
    var servingRegion: String?
    var output = ByteBuffer()
    var ended = false
    /// Refused because everything in the zone serving the model was busy (`zone_busy`): the loop's
    /// concurrency bound hears of it (``EventLoopLoad/upstreamBusy()``).
    var refusedBusy = false
    /// The soonest a busy upstream tried said to come back, in seconds: its `Retry-After`, or 1 when
    /// it said nothing.
    var busyRetryAfter: Int?
    /// Whether an attempt failed otherwise than busy, by the upstream's fault: then "every upstream
    /// tried is busy" is not so.
    var failedOtherwiseThanBusy = false
    /// The attempts' failure labels, each once, in the order they came: what a request that ran out of
    /// attempts tells its client (the last alone hid an upstream's 500 behind a later one's 429).
    var failureLabels: [String] = []
    /// Cars whose runtime answered this request with a 5xx before any token, blamed once another car
    /// serves it (``blameRuntimeErrors()``).
    var runtimeErrorCars: [CarID] = []
    /// What the last failed upstream said (its error's message, at most 200 characters), for the client's
    /// 502: "the inference runtime answered 500: …" told the app why (helper-71: it read only
    /// "upstream_error"). Sent to the client whose request it is about, never logged.
    var lastUpstreamMessage: String?
    /// The error code the client was answered with (or the rejection's), for the request's log line.
    var errorCode: String?
    /// The attempt being opened: not yet in ``attempts`` while its upstream starts.
    var opening: Int?
    /// The body of an upstream's rejection (a 4xx), passed through to the client.
    var rejectionBody = ByteBuffer()
    /// A car runtime's rejection of the request, tried once elsewhere (a car with a smaller context,
    /// or one that lies, must not fail a request alone): its status and body, the client's answer when
    /// nothing else serves it.
    var carRejection: (status: Int, body: ByteBuffer, car: CarID)?
    /// The car whose rejection is relayed, for its route headers and the audit line (helper-125: not named).
    var refusingCar: CarID?
    /// When the client got its first token (the GenAI metrics).
    var clientFirstTokenAt: NIODeadline?
    /// The whole answer central gave a `stream: false` request (``CentralAnswer``), for the client
    /// as it is; nil when the relay assembles the answer from a stream.
    var answerBody: ByteBuffer?
    /// That answer's usage: central's counts, or the gateway's estimates where it said none.
    var answerUsage: Usage?
    /// A retry or continuation waiting for a slot in a busy zone (``CapacityWait``).
    var capacityWait: CapacityWait
    /// The attempt that waits, and the timer that asks for it again.
    var capacityWaiter: (open: DispatchStateMachine.Open, timer: NIOScheduledCallback)?
    /// Whether this request counts among ``GatewayCore/capacityWaiters`` (and a `fleet_capacity_waits_total`
    /// result is owed).
    var waitCounted = false
    /// Whether a first attempt found no candidate because a lost stream waits in the zone: the zone
    /// is full, so the refusal is 503 `server_overloaded`.
    var yieldedToWaiter = false
    /// When a retry (or a `stream: false` restart) found no candidate while capacity the request had
    /// not tried was only busy, the `Retry-After` of its refusal: the zone is full, so it is 503
    /// `server_overloaded`, not the failed attempt's 502 (``CapacityWait``; helper-84).
    var retryFoundZoneBusy: Int?
    /// Answer bytes passed to the client's stream while it was not writable, and counted against
    /// ``GatewayCore/reserveAnswer(_:limit:)`` until it is writable again or closes (``holdForSlowClient(_:)``).
    var heldForSlowClient = 0
    /// Inside an upstream's read (``upstream(_:didReceive:)``), which counts what it queued for a slow client.
    var inUpstreamRead = false

    init(
        core: GatewayCore, stream: any HTTPStream, request: ValidatedRequest, requestID: String, route: String,
        started: NIODeadline, logger: RequestLogger, timers: LoopTimers, onEnd: @escaping (Int) -> Void
    ) {
        self.core = core
        self.timers = timers
        self.stream = stream
        self.request = request
        self.requestID = requestID
        self.route = route
        self.started = started
        self.logger = logger
        self.onEnd = onEnd
        let configuration = core.configuration
        self.machine = DispatchStateMachine(
            configuration: .init(
                maxAttempts: configuration.maxAttempts, maxMigrations: configuration.maxMigrations,
                hedging: configuration.hedging, continuable: request.continuable, restartable: !request.streaming))
        self.relay = SSERelay(
            configuration: .init(
                streaming: request.streaming, includeUsage: request.includeUsage, chat: request.chat,
                maxOutputTokens: request.outputLimit, fallbackID: (request.chat ? "chatcmpl-" : "cmpl-") + requestID,
                fallbackModel: request.model,
                fallbackCreated: time(nil), responses: request.responses, choices: request.choices,
                estimatedPromptTokens: request.profile.promptTokens,
                promptTokenBound: request.body.readableBytes + SSERelay.promptTemplateAllowance))
        self.candidates = CandidateList(
            core: core, profile: request.profile, preferredRegion: request.origin.region)
        self.candidates.centralOnly = request.centralOnly  // edge (#18): central-only application keys
        // cluster (#21); not a spilled request: the replica it would go to serves its origin's zone.
        if request.hop == 0, core.cluster != nil, request.zone == request.origin.zone {
            self.candidates.forwarding = .init()
        }
        self.capacityWait = CapacityWait(limit: core.liveConfiguration.configuration.dispatch.capacityWait)
    }

    /// Opens the first attempt.
    func start() {
        self.perform(self.machine.start())
    }

    /// The client went away: stop every upstream (RST_STREAM CANCEL, so engines stop). `byShutdown`:
    /// the gateway closed the client's connection at the end of its drain's grace, and the request ends
    /// 503 `gateway_shutdown` (its line and metrics; the client's stream was cut), not 499.
    func clientGone(byShutdown: Bool = false) {
        self.releaseHeldAnswer()
        guard !self.ended else { return }
        self.perform(self.machine.clientGone())
        if byShutdown { self.errorCode = "gateway_shutdown" }
        self.end(status: byShutdown ? 503 : 499)
    }

    /// The client's stream can take more: give the committed attempt its withheld credit.
    func clientWritable() {
        self.releaseHeldAnswer()
        guard let id = self.machine.committed, let attempt = self.attempts[id], attempt.unconsumed > 0 else { return }
        attempt.upstream?.consume(attempt.unconsumed)
        attempt.unconsumed = 0
    }

    // MARK: Actions

    func perform(_ action: DispatchStateMachine.Action) {
        switch action {
        case .none, .forward, .commit:
            // Commits are performed where the first token is read (they carry its bytes).
            break
        case .open(let open):
            self.open(open)
        case .migrate(let cancel, let open):
            if let cancel { self.cancel(cancel) }
            self.open(open)
        case .cancel(let ids):
            ids.forEach(self.cancel)
        case .finish(let cancel):
            cancel.forEach(self.cancel)
            self.finish()
        case .fail(let reason, let midStream, let cancel):
            cancel.forEach(self.cancel)
            self.fail(reason, midStream: midStream)
        case .attemptFailed(let id, let failure):
            guard self.attempts[id] != nil else {
                // Not in the table (none today): the machine must still hear of it, or it waits.
                return self.perform(self.machine.failed(id, failure))
            }
            self.attemptFailed(id, failure)
        }
    }

    private func open(_ open: DispatchStateMachine.Open) {
        self.retryFoundZoneBusy = nil  // only this attempt's search says whether the zone is full
        if open.reason == .restart {
            // Nothing of the lost answer reached the client: the new one is its whole answer, and
            // what the request says of where it was served is the new answer's.
            self.relay.restart()
            self.servingLease = nil
            self.servingRegion = nil
            self.clientFirstTokenAt = nil
        }
        let continuing = open.resumeFrom > 0
        // A lost stream waits for a car's slot in this zone: a new request (or its hedge) leaves the
        // next free one to it — central capacity with room still serves it — or is answered 503
        // server_overloaded.
        let yields =
            open.reason == .initial || open.reason == .hedge
            ? self.core.capacityWaiters.smallestNeed(zone: self.request.zone, model: self.request.model) : nil
        if yields != nil { self.yieldedToWaiter = true }
        self.candidates.carsYielded = yields
        self.candidates.fittingOnly = open.reason == .hedge
        self.supersedeDepartureWait(by: open)
        guard let lease = self.candidates.next(continuation: continuing) else { return self.noCandidate(for: open) }
        self.stopWaiting(.served)
        // The privacy invariant, checked again here (CandidateList and the registry filter by zone):
        // should it ever break, the attempt is refused and logged, never served and never a crash.
        guard lease.zone == self.request.zone else {
            self.logger.error(
                "Internal inconsistency: a candidate outside the request's zone was refused",
                metadata: ["fleet.request.id": "\(self.requestID)", "fleet.zone": "\(self.request.zone)"])
            self.candidates.release(
                lease, outcome: Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: true))
            return self.perform(self.machine.noCandidate(open.attempt))
        }
        switch open.reason {
        case .retry: self.core.metrics.retries.increment()
        case .hedge: self.core.metrics.hedgesStarted.increment()
        case .failover, .departure, .restart: self.core.metrics.failover(reason: open.reason)  // one that runs
        case .initial: break
        }
        let now = NIODeadline.now()
        let wholeAnswer = self.asksWholeAnswer(lease, resumeFrom: open.resumeFrom)
        let attempt = Attempt(
            lease: lease, reason: open.reason, resumeFrom: open.resumeFrom, startedAt: now,
            deadlines: self.deadlines(for: open, lease: lease, start: now, wholeAnswer: wholeAnswer))
        if wholeAnswer {
            attempt.answer = CentralAnswer(
                configuration: .init(
                    chat: self.request.chat, maxBytes: self.relay.configuration.maxAggregateBytes,
                    fallbackID: self.relay.configuration.fallbackID, model: self.request.model,
                    created: self.relay.configuration.fallbackCreated))
        } else {
            // A continuation's prompt repeats the delivered text, except on a car that resumes exactly.
            var repeating = 0
            if continuing {  // the lease is not looked at (copied) for a first attempt
                switch lease {
                case .car(let car, _, _): repeating = car.continuation == .prefix ? open.resumeFrom : 0
                case .central(let endpoint, _): repeating = endpoint.continuation == .exact ? 0 : open.resumeFrom
                case .forward: repeating = 0
                }
            }
            let car = if case .car = lease { true } else { false }
            self.relay.open(attempt: open.attempt, repeating: repeating, untrusted: car)
        }
        let relay = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        self.opening = open.attempt
        defer { self.opening = nil }
        switch lease {
        case .car(let car, let dispatch, let tunnel):
            let bound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
            let id = open.attempt
            attempt.departureWatch = self.core.tunnels.watch(dispatch.car) { secondsLeft in
                bound.eventLoop.execute { bound.value.carDeparting(id, secondsLeft: secondsLeft) }
            }
            var head = HTTPRequest(method: .post, scheme: "http", authority: "car", path: self.route)
            head.headerFields[.fleetZone] = self.request.zone
            head.headerFields[.contentType] = "application/json"
            head.headerFields[.fleetStreamMode] = "sse-usage"
            // A fresh head: appended, not set (the setter searches the fields first).
            head.headerFields.append(.perMessage(.fleetRequestID, self.requestID))
            head.headerFields.append(.perMessage(.fleetSeed, String(self.request.seed)))
            head.headerFields.append(.perMessage(.traceparent, self.request.traceParent))  // #17: W3C Trace Context
            if let state = self.request.traceState { head.headerFields[.tracestate] = state }
            var body = self.carRequestBody
            if continuing {
                head.headerFields[.fleetResumeFrom] = String(open.resumeFrom)
                if car.continuation == .prefix {
                    head.headerFields[.fleetContinuation] = "prefix"
                    body = Self.carBody(self.prefixBody(delivered: open.resumeFrom), members: nil)
                }
            }
            attempt.upstream = CarUpstream.open(
                tunnel: tunnel, request: head, body: body, attempt: open.attempt, relay: relay)
        case .central(let endpoint, _):
            let path = String(self.route.dropFirst(3))
            // An endpoint that continues token-exact (`central.continuation: exact`, e.g. `fleet-agent
            // serve` on the synthetic engine) is asked for tokens N, N+1, … of the same answer, as an
            // exact car is — the original body, the seed and the resume point; any other gets the
            // delivered text (helper-65: an exact one got the text, and answered something else).
            let exact = continuing && endpoint.continuation == .exact
            let body =
                wholeAnswer
                ? self.centralAnswerBody() : self.centralBody(resumeFrom: exact ? 0 : open.resumeFrom)
            let extra: [(name: String, value: String)] =
                exact
                ? [(FleetHeader.resumeFrom, String(open.resumeFrom)), (FleetHeader.seed, String(self.request.seed))]
                : []
            let trace = (self.request.traceParent, self.request.traceState)
            if let pool = self.core.centralClients.pool(for: endpoint, on: self.stream.eventLoop) {
                attempt.upstream = CentralUpstream.open(
                    pool: pool, path: path, body: body, requestID: self.requestID, trace: trace,
                    wholeAnswer: wholeAnswer, extra: extra, attempt: open.attempt, relay: relay)
            } else {  // a base URL the own client does not take: async-http-client
                attempt.upstream = CentralFallbackUpstream.open(
                    client: self.core.httpClient!, endpoint: endpoint, path: path, body: body,
                    requestID: self.requestID,
                    trace: trace, wholeAnswer: wholeAnswer, extra: extra, attempt: open.attempt, relay: relay)
            }
        case .forward(let target, _):  // cluster (#21): another replica; the original body (exactReplayStart)
            attempt.upstream = ForwardUpstream.open(
                target: target, view: self.core.cluster!, route: self.route, body: self.centralBody(resumeFrom: 0),
                request: self.request, requestID: self.requestID, attempt: open.attempt, relay: relay)
        }
        self.attempts[open.attempt] = attempt
        self.armTimer(open.attempt)
        self.logger.debug(
            "Attempt opened",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(open.attempt)",
                "fleet.attempt.reason": "\(open.reason)", "fleet.resume.from": "\(open.resumeFrom)",
            ])
        // A departure onto an upstream that goes on from a text (a prefix car, a non-exact central endpoint):
        // the departing car, which cannot finish in time, stops here, so the text the continuation goes on
        // from stays the client's — a failover planned while the car is still there (helper-110: streaming
        // on, it ran ahead of the continuation, whose takeover repeated the tokens between).
        if open.reason == .departure, lease.exactReplayStart(resumeFrom: open.resumeFrom) == nil,
            let departing = self.machine.committed, departing != open.attempt
        {
            self.attemptFailed(departing, DispatchStateMachine.departingFailure)
        }
    }

    /// The body every car attempt from the start sends (retries and hedges too): made once.
    private(set) lazy var carRequestBody = Self.carBody(self.request.body, members: self.request.members)

    func cancel(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        attempt.upstream?.cancel()
        self.close(id, outcome: self.outcome(attempt, succeeded: true))
        if self.machine.committed != id { self.relay.close(attempt: id) }
    }

    /// Removes an attempt and gives its lease back with its outcome (exactly once); `busyFor`: the
    /// seconds an upstream that answered busy asked to be left alone.
    func close(_ id: Int, outcome: Outcome, busyFor: Int? = nil, failure: String? = nil) {
        guard let attempt = self.attempts.removeValue(forKey: id) else { return }
        attempt.closed = true
        if let timer = attempt.timer { self.timers.cancel(timer) }
        if let token = attempt.departureWatch, case .car(_, let dispatch, _) = attempt.lease {
            self.core.tunnels.unwatch(dispatch.car, token: token)
        }
        self.candidates.release(attempt.lease, outcome: outcome, busyFor: busyFor, failure: failure)
    }

    /// What an attempt showed, for the scheduler to learn from: counted tokens, not guessed ones.
    func outcome(_ attempt: Attempt, succeeded: Bool) -> Outcome {
        if attempt.answer != nil, attempt.firstTokenAt != nil {
            // A whole answer: the time to it is prefill and decoding together, so neither the first
            // token's time nor the per-token time is known — the endpoint's estimate learns neither.
            return Outcome(
                ttftMilliseconds: nil, tpotMilliseconds: nil, promptTokens: attempt.promptTokens,
                outputTokens: attempt.tokens, succeeded: succeeded)
        }
        guard let first = attempt.firstTokenAt else {
            return Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: succeeded)
        }
        let ttft = Double((first - attempt.startedAt).nanoseconds) / 1e6
        var tpot: Double?
        if let last = attempt.lastTokenAt, attempt.tokens >= 2 {
            tpot = Double((last - first).nanoseconds) / 1e6 / Double(attempt.tokens - 1)
        }
        return Outcome(
            ttftMilliseconds: ttft, tpotMilliseconds: tpot, promptTokens: nil, outputTokens: attempt.tokens,
            succeeded: succeeded)
    }
}
