import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

/// Carries out a ``DispatchStateMachine``'s decisions for one validated request, on the client
/// stream's event loop: opens upstream attempts on the leases a ``CandidateList`` hands out,
/// feeds their bytes through the ``SSERelay``, arms the per-attempt timers, writes to the
/// client, and reports each attempt's outcome to the scheduler exactly once.
///
/// Everything that is a decision — retry, hedge, failover, which attempt the client hears, when
/// to end — is the state machine's; this type only performs actions and turns I/O into events.
final class Dispatcher: UpstreamEvents {
    /// One open attempt.
    struct Attempt {
        var lease: AttemptLease
        var reason: DispatchStateMachine.OpenReason
        /// The token index the attempt starts at (a continuation's N).
        var resumeFrom: Int
        /// Tokens skipped because the client already had them (a departure's continuation
        /// catching up with the car it replaces).
        var skipped = 0
        var upstream: (any Upstream)?
        var startedAt: NIODeadline
        var firstTokenAt: NIODeadline?
        var lastTokenAt: NIODeadline?
        var tokens = 0
        var status = 0
        var errorBody = ByteBuffer()
        var unconsumed = 0
        var timers: [Scheduled<Void>] = []
        var watchdog: Scheduled<Void>?
        /// The departure watch on the attempt's car.
        var departureWatch: Int?
    }

    let core: GatewayCore
    let stream: any HTTPStream
    let request: ValidatedRequest
    let requestID: String
    let route: String
    let started: NIODeadline
    let logger: Logger
    /// Called once when the request ends (finished, failed or abandoned), with the client status.
    let onEnd: (Int) -> Void

    private var machine: DispatchStateMachine
    private var relay: SSERelay
    private var candidates: CandidateList
    private var attempts: [Int: Attempt] = [:]
    /// The lease of the attempt the client hears (kept after it ends, for headers and the audit line).
    private var servingLease: AttemptLease?
    private var output = ByteBuffer()
    private var ended = false
    /// The body of an upstream's rejection (a 4xx), passed through to the client.
    private var rejectionBody = ByteBuffer()

    init(
        core: GatewayCore, stream: any HTTPStream, request: ValidatedRequest, requestID: String, route: String,
        started: NIODeadline, logger: Logger, onEnd: @escaping (Int) -> Void
    ) {
        self.core = core
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
                hedging: configuration.hedging, continuable: request.continuable))
        self.relay = SSERelay(
            configuration: .init(
                streaming: request.streaming, includeUsage: request.includeUsage, chat: request.chat,
                maxOutputTokens: request.outputLimit, fallbackID: "chatcmpl-" + requestID, responses: request.responses))
        self.candidates = CandidateList(
            core: core, profile: request.profile, preferredRegion: request.origin.region)
        self.candidates.centralOnly = request.centralOnly  // edge (#18): central-only application keys
    }

    /// Opens the first attempt.
    func start() {
        self.perform(self.machine.start())
    }

    /// The client went away: stop every upstream (RST_STREAM CANCEL, so engines stop).
    func clientGone() {
        guard !self.ended else { return }
        self.perform(self.machine.clientGone())
        self.end(status: 499)
    }

    /// The client's stream can take more: give the committed attempt its withheld credit.
    func clientWritable() {
        guard let id = self.machine.committed, var attempt = self.attempts[id], attempt.unconsumed > 0 else { return }
        attempt.upstream?.consume(attempt.unconsumed)
        attempt.unconsumed = 0
        self.attempts[id] = attempt
    }

    // MARK: Actions

    private func perform(_ action: DispatchStateMachine.Action) {
        switch action {
        case .none, .forward, .commit:
            // Commits are performed where the first token is read (they carry its bytes).
            break
        case .open(let open):
            self.open(open)
        case .migrate(let cancel, let open):
            if let cancel { self.cancel(cancel) }
            self.core.metrics.failover(reason: open.reason)
            self.open(open)
        case .cancel(let ids):
            ids.forEach(self.cancel)
        case .finish(let cancel):
            cancel.forEach(self.cancel)
            self.finish()
        case .fail(let reason, let midStream, let cancel):
            cancel.forEach(self.cancel)
            self.fail(reason, midStream: midStream)
        }
    }

    private func open(_ open: DispatchStateMachine.Open) {
        let continuing = open.resumeFrom > 0
        guard let lease = self.candidates.next(continuation: continuing) else {
            return self.perform(self.machine.noCandidate(open.attempt))
        }
        precondition(lease.zone == self.request.zone, "Internal inconsistency: an upstream outside the zone")
        if open.reason == .retry { self.core.metrics.retries.increment() }
        if open.reason == .hedge { self.core.metrics.hedgesStarted.increment() }
        let now = NIODeadline.now()
        var attempt = Attempt(lease: lease, reason: open.reason, resumeFrom: open.resumeFrom, startedAt: now)
        self.relay.open(attempt: open.attempt)
        let relay = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
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
            head.headerFields[.fleetRequestID] = self.requestID
            head.headerFields[.fleetSeed] = String(self.request.seed)
            var body = self.request.body
            if continuing {
                head.headerFields[.fleetResumeFrom] = String(open.resumeFrom)
                if car.continuation == .prefix {
                    head.headerFields[.fleetContinuation] = "prefix"
                    body = self.prefixBody(delivered: open.resumeFrom)
                }
            }
            attempt.upstream = CarUpstream.open(
                tunnel: tunnel, request: head, body: body, attempt: open.attempt, relay: relay)
        case .central(let endpoint, _):
            attempt.upstream = CentralUpstream.open(
                client: self.core.httpClient!, endpoint: endpoint, path: String(self.route.dropFirst(3)),
                body: self.centralBody(resumeFrom: open.resumeFrom), requestID: self.requestID,
                attempt: open.attempt, relay: relay)
        }
        attempt.timers = self.armTimers(for: open, lease: lease)
        self.attempts[open.attempt] = attempt
        self.logger.debug(
            "Attempt opened",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(open.attempt)",
                "fleet.attempt.reason": "\(open.reason)", "fleet.resume.from": "\(open.resumeFrom)",
            ])
    }

    /// The body for a central endpoint (a generic OpenAI-compatible server): the client's bytes
    /// with `stream: true` and usage asked for — every other field passes through unchanged — and,
    /// for a continuation, the delivered text to continue from.
    private func centralBody(resumeFrom: Int) -> ByteBuffer {
        let body = resumeFrom > 0 ? self.prefixBody(delivered: resumeFrom) : self.request.body
        return JSONBody.editing(
            body, removing: ["stream", "stream_options"],
            appending: [("stream", "true"), ("stream_options", "{\"include_usage\":true}")]) ?? body
    }

    /// The client's body with the delivered text to continue from (prefix continuation).
    private func prefixBody(delivered: Int) -> ByteBuffer {
        JSONBody.continuation(of: self.request.body, text: self.relay.deliveredText, delivered: delivered)
            ?? self.request.body
    }

    private func armTimers(for open: DispatchStateMachine.Open, lease: AttemptLease) -> [Scheduled<Void>] {
        let loop = self.stream.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let id = open.attempt
        let configuration = self.core.configuration
        var timers: [Scheduled<Void>] = []
        timers.append(
            loop.scheduleTask(in: configuration.firstTokenTimeout) {
                bound.value.attemptFailed(id, .init(retryable: true, label: "first_token_timeout"), onlyBeforeFirstToken: true)
            })
        timers.append(
            loop.scheduleTask(in: configuration.attemptTimeout) {
                bound.value.attemptFailed(id, .init(retryable: true, label: "total_timeout"))
            })
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
        return timers
    }

    /// Arms (or re-arms) the inter-token watchdog of an attempt that has produced tokens.
    private func armWatchdog(_ id: Int) {
        guard var attempt = self.attempts[id], attempt.watchdog == nil else { return }
        let limit = self.interTokenLimit(attempt)
        let bound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        attempt.watchdog = self.stream.eventLoop.scheduleTask(in: limit) { bound.value.watchdogFired(id) }
        self.attempts[id] = attempt
    }

    private func interTokenLimit(_ attempt: Attempt) -> TimeAmount {
        let floor = self.core.configuration.interTokenTimeout
        guard let tpot = attempt.lease.predictedTPOTMilliseconds else { return floor }
        return max(floor, .nanoseconds(Int64(10 * tpot * 1e6)))
    }

    private func watchdogFired(_ id: Int) {
        guard var attempt = self.attempts[id] else { return }
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
    private func carDeparting(_ id: Int, secondsLeft: Double) {
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

    private func cancel(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        attempt.upstream?.cancel()
        self.close(id, outcome: self.outcome(attempt, succeeded: true))
        if self.machine.committed != id { self.relay.close(attempt: id) }
    }

    /// Removes an attempt and gives its lease back with its outcome (exactly once).
    private func close(_ id: Int, outcome: Outcome) {
        guard let attempt = self.attempts.removeValue(forKey: id) else { return }
        attempt.timers.forEach { $0.cancel() }
        attempt.watchdog?.cancel()
        if let token = attempt.departureWatch, case .car(_, let dispatch, _) = attempt.lease {
            self.core.tunnels.unwatch(dispatch.car, token: token)
        }
        self.candidates.release(attempt.lease, outcome: outcome)
    }

    /// What an attempt showed, for the scheduler to learn from: counted tokens, not guessed ones.
    private func outcome(_ attempt: Attempt, succeeded: Bool) -> Outcome {
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

    // MARK: Upstream events

    func upstream(_ id: Int, didReceiveStatus status: Int) {
        self.attempts[id]?.status = status
    }

    func upstream(_ id: Int, didReceive data: ByteBuffer) {
        guard var attempt = self.attempts[id] else { return }
        guard attempt.status == 200 else {
            if attempt.errorBody.readableBytes < 16 * 1024 {
                attempt.errorBody.writeImmutableBuffer(data)
                self.attempts[id] = attempt
            }
            attempt.upstream?.consume(data.readableBytes)
            return
        }
        let items = self.relay.receive(data, from: id)
        for item in items {
            guard !self.ended, self.attempts[id] != nil else { break }
            self.handle(item, from: id)
        }
        self.flush()
        guard var attempt = self.attempts[id] else { return }
        if !self.request.streaming || self.stream.isWritable || self.machine.committed != id {
            attempt.upstream?.consume(data.readableBytes)
        } else {
            attempt.unconsumed += data.readableBytes
            self.attempts[id] = attempt
        }
    }

    private func handle(_ item: SSERelay.Item, from id: Int) {
        switch item.kind {
        case .preamble:
            if self.machine.committed != id { self.relay.hold(item, from: id) }
        case .output:
            if self.relay.wouldExceedLimits(item) { return self.finishOverLimit(id) }
            self.tokenArrived(item, from: id)
        case .usage:
            break  // recorded by the relay; the client's usage chunk is written at the end
        case .done:
            self.perform(self.machine.finished(id))
        case .upstreamError:
            self.attemptFailed(id, .init(retryable: true, label: "upstream_error"))
        case .malformed(let label):
            self.attemptFailed(id, .init(retryable: true, label: label))
        case .overLimit:
            self.finishOverLimit(id)
        }
    }

    private func tokenArrived(_ item: SSERelay.Item, from id: Int) {
        guard var attempt = self.attempts[id] else { return }
        if attempt.firstTokenAt == nil, attempt.resumeFrom + attempt.skipped < self.machine.delivered,
            case .car(let car, _, _) = attempt.lease, car.continuation == .exact
        {
            // Token-exact continuation behind the stream: the client has this token already.
            attempt.skipped += 1
            self.attempts[id] = attempt
            return
        }
        let now = NIODeadline.now()
        let first = attempt.firstTokenAt == nil
        let action = first ? self.machine.firstToken(id) : self.machine.token(id)
        if first {
            attempt.firstTokenAt = now
            attempt.timers.forEach { $0.cancel() }
            attempt.timers = [self.totalDeadline(id, from: attempt.startedAt)]
        } else if let last = attempt.lastTokenAt {
            self.core.metrics.interToken.recordNanoseconds((now - last).nanoseconds)
        }
        attempt.lastTokenAt = now
        attempt.tokens += 1
        self.attempts[id] = attempt
        switch action {
        case .commit(_, let sendHead, let losers):
            losers.forEach(self.cancel)
            if attempt.reason == .hedge {
                self.core.metrics.hedgesWon.increment()
            }
            self.servingLease = attempt.lease
            self.recordFirstToken(attempt, now: now, isFirstForClient: sendHead)
            if sendHead && self.request.streaming { self.sendStreamHead() }
            self.relay.commit(id, first: item, into: &self.output)
        case .forward:
            self.relay.deliver(item, from: id, into: &self.output)
        default:
            self.perform(action)
        }
        if first { self.armWatchdog(id) }
    }

    private func totalDeadline(_ id: Int, from start: NIODeadline) -> Scheduled<Void> {
        let bound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        return self.stream.eventLoop.scheduleTask(deadline: start + self.core.configuration.attemptTimeout) {
            bound.value.attemptFailed(id, .init(retryable: true, label: "total_timeout"))
        }
    }

    private func recordFirstToken(_ attempt: Attempt, now: NIODeadline, isFirstForClient: Bool) {
        if case .car(_, let dispatch, _) = attempt.lease {
            let observed = (now - attempt.startedAt).nanoseconds
            self.core.metrics.observedCarTTFT.recordNanoseconds(observed)
            self.core.metrics.predictedTTFT.recordNanoseconds(Int64(dispatch.predictedTTFTMilliseconds * 1e6))
            self.core.metrics.predictionRatio.record(dispatch.predictedTTFTMilliseconds * 1e6 / Double(max(1, observed)))
        }
        if isFirstForClient { self.core.metrics.ttft.recordNanoseconds((now - self.started).nanoseconds) }
    }

    func upstreamDidEnd(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        guard attempt.status == 200 else {
            let status = attempt.status
            let clientFault = (400..<500).contains(status) && status != 408 && status != 429
            return self.attemptFailed(
                id, .init(retryable: !clientFault, label: "status_\(status / 100)xx", status: clientFault ? status : nil))
        }
        self.perform(self.machine.finished(id))
    }

    func upstream(_ id: Int, didFail failure: UpstreamFailure) {
        self.attemptFailed(id, .init(retryable: failure.retryable, label: failure.label))
    }

    private func attemptFailed(
        _ id: Int, _ failure: DispatchStateMachine.Failure, onlyBeforeFirstToken: Bool = false
    ) {
        guard let attempt = self.attempts[id], !self.ended else { return }
        if onlyBeforeFirstToken && attempt.firstTokenAt != nil { return }
        self.core.metrics.attemptFailed(label: failure.label)
        self.logger.debug(
            "Attempt failed",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "fleet.attempt": "\(id)", "error.type": "\(failure.label)",
            ])
        attempt.upstream?.cancel()
        if failure.status != nil {
            // Keep the body of a rejection to pass it through.
            self.rejectionBody = attempt.errorBody
        }
        self.close(id, outcome: self.outcome(attempt, succeeded: false))
        self.flush()
        self.perform(self.machine.failed(id, failure))
    }


    // MARK: The client's answer

    private func flush() {
        guard self.output.readableBytes > 0 else { return }
        self.stream.sendData(self.output, endStream: false)
        self.output = ByteBuffer()
    }

    private func sendStreamHead() {
        var response = HTTPResponse(status: .ok)
        response.headerFields = self.routeHeaders()
        response.headerFields[.contentType] = "text/event-stream"
        response.headerFields[.cacheControl] = "no-cache"
        self.stream.sendResponse(response, endStream: false)
    }

    private func finishOverLimit(_ id: Int) {
        self.relay.finishOverLimit(into: &self.output)
        self.perform(self.machine.finished(id))
    }

    private func finish() {
        if let id = self.machine.committed, let attempt = self.attempts[id] {
            attempt.upstream?.cancel()  // harmless after its end; stops one that is past a bound
            self.close(id, outcome: self.outcome(attempt, succeeded: true))
        }
        if self.servingLease.map({ if case .car = $0 { true } else { false } }) ?? false {
            self.core.metrics.routeCar.increment()
        } else {
            self.core.metrics.routeCentral.increment()
        }
        let headers = self.routeHeaders()
        self.end(status: 200)  // before the last write (see ``end(status:)``)
        if self.request.streaming {
            self.relay.finishStream(into: &self.output)
            self.flush()
            self.stream.sendEnd(trailers: self.machine.migrations > 0 ? headers : nil)
        } else {
            self.stream.sendResponse(
                status: .ok, contentType: "application/json", body: self.relay.responseBody(model: self.request.model),
                headers: headers)
        }
    }

    private func fail(_ reason: DispatchStateMachine.FailureReason, midStream: Bool) {
        let error: APIError
        switch reason {
        case .noCapacity:
            error = .noCapacity(zone: self.request.zone)
        case .attemptsExhausted(let label):
            error = .upstreamFailed(
                "No car or central endpoint could serve the request after \(self.machine.opened) attempts (\(label)).")
        case .rejected(let status):
            let headers = self.routeHeaders()
            self.end(status: status)
            return self.stream.sendResponse(
                status: .init(code: status), contentType: "application/json", body: self.rejectionBody,
                headers: headers)
        case .migrationLimit(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)) after \(self.machine.migrations) continuations, the most allowed.")
        case .noContinuationCandidate(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)) and no car or central endpoint in zone '\(self.request.zone)' can continue it.")
        case .notContinuable(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)); this request (n > 1, tools, a response schema or logprobs) cannot be continued elsewhere.")
        }
        if midStream {
            let event = self.relay.clientErrorEvent(error)
            self.end(status: 502)
            self.flush()
            self.stream.sendData(event, endStream: true)
        } else {
            var headers = self.routeHeaders()
            if error.code == "no_capacity_in_zone" { headers[.xShouldRetry] = "false" }
            self.end(status: error.status)
            self.stream.sendResponse(
                status: .init(code: error.status), contentType: "application/json", body: JSON.buffer(error.body),
                headers: headers)
        }
    }

    /// Ends the request once: cancels what is still open and reports `status`. Called before the
    /// answer's last write, because an HTTP/1.1 stream closes as that write completes — and that
    /// close must not count as the client going away (499).
    private func end(status: Int) {
        guard !self.ended else { return }
        self.ended = true
        for id in Array(self.attempts.keys) { self.cancel(id) }
        self.onEnd(status)
    }

    /// Where the answer came from (DESIGN.md, Contracts: headers, and trailers after a failover).
    func routeHeaders() -> HTTPFields {
        var fields = HTTPFields()
        fields[.fleetRequestID] = self.requestID
        fields[.fleetZone] = self.request.zone
        fields[.fleetOriginRegion] = self.request.origin.region
        fields[.fleetAttempts] = String(self.machine.opened)
        if self.machine.migrations > 0 { fields[.fleetMigrations] = String(self.machine.migrations) }
        let lease = self.servingLease ?? self.attempts.values.first?.lease
        if let predicted = lease?.predictedTTFTMilliseconds {
            fields[.fleetPredictedTTFT] = String(Int(predicted.rounded()))
        }
        switch lease {
        case .car(let car, _, _):
            fields[.fleetRoute] = "car"
            fields[.fleetRegion] = car.region
            fields[.fleetVehicle] = car.pseudonym
        case .central(let endpoint, _):
            fields[.fleetRoute] = "central"
            fields[.fleetRegion] = endpoint.region
        case nil:
            break
        }
        return fields
    }

    /// For the audit line: where the answer was served, never what it said.
    var auditFields: (route: String, region: String, vehicle: String, attempts: Int, tokens: Int, migrations: Int) {
        let tokens = self.relay.deliveredTokens
        switch self.servingLease {
        case .car(let car, _, _):
            return ("car", car.region, car.pseudonym, self.machine.opened, tokens, self.machine.migrations)
        case .central(let endpoint, _):
            return ("central", endpoint.region, "-", self.machine.opened, tokens, self.machine.migrations)
        case nil:
            return ("-", "-", "-", self.machine.opened, tokens, self.machine.migrations)
        }
    }
}
