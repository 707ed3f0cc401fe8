import CoreMetrics
import FleetGeo
import FleetHTTP1Client
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

/// What the attempts' upstreams report — status, bytes, end, failure — turned into the state
/// machine's events and the relay's output (the per-token path).
extension Dispatcher {

    func upstream(_ id: Int, didReceiveStatus status: Int) {
        self.attempts[id]?.status = status
    }

    func upstream(_ id: Int, isBusyFor seconds: Int) {
        self.attempts[id]?.retryAfter = seconds
    }

    func upstream(_ id: Int, didReceive data: ByteBuffer) {
        self.received(data, from: id, readContinues: false)
    }

    /// Until a token is committed: in a burst (a central answer read at once), its first token leaves
    /// before the HTTP/1.1 decoder has parsed the other 31 (~70 k instructions of TTFT).
    func upstreamWantsBytesAtOnce(_ id: Int) -> Bool {
        self.machine.committed == nil && self.request.streaming
    }

    func upstreamIsOpen(_ id: Int) -> Bool {
        self.attempts[id] != nil
    }

    func upstream(_ id: Int, didReceivePartOfRead data: ByteBuffer) {
        self.received(data, from: id, readContinues: true)
    }

    /// An attempt's bytes; `readContinues`: more of the same read follows at once.
    private func received(_ data: ByteBuffer, from id: Int, readContinues: Bool) {
        guard let attempt = self.attempts[id] else { return }
        guard attempt.status == 200 else {
            if attempt.errorBody.readableBytes < 16 * 1024 {
                attempt.errorBody.writeImmutableBuffer(data)
            }
            attempt.upstream?.consume(data.readableBytes)
            return
        }
        if attempt.answer != nil { return self.answerPart(data, of: attempt, id) }
        let upstream = attempt.upstream
        self.inUpstreamRead = true
        defer { self.inUpstreamRead = false }
        self.reuseOutput()
        let passedBefore = self.output.readerIndex
        self.relay.append(data, from: id)
        while !self.ended, !attempt.closed {
            // Plain tokens of the stream the client hears pass through in a run, without an item each.
            if self.machine.forwards(id) {
                let count = self.relay.forwardTokens(from: id, into: &self.output)
                if count > 0 { self.forwarded(count, from: attempt, id) }
            }
            guard let item = self.relay.next(from: id) else { break }
            let committed = self.machine.committed != nil
            self.handle(item, from: id)
            // The first token goes out now, not at the end of this pass, when more of this read follows
            // it: in a burst (a central answer read at once, delivered part by part in this pass) it
            // would wait for the whole answer. One extra write per bursting stream. A first token that
            // ends its read goes with the connection's next flush, as every later token does: flushing
            // it alone cost a write per stream when several streams' tokens arrive in one tunnel read.
            if !committed, self.machine.committed != nil, self.request.streaming,
                readContinues || self.relay.hasBufferedBytes(from: id)
            {
                self.flush()
                self.stream.flushNow()
            }
        }
        self.flush()
        let queued = self.output.readerIndex - passedBefore
        guard !attempt.closed else {
            // The attempt ended on these bytes (its `[DONE]`): acknowledge them all the same, so a
            // finished upstream completes cleanly — an unacknowledged central response never
            // reached its end, and async-http-client closed its connection instead of reusing it.
            upstream?.consume(data.readableBytes)
            self.countLastBytes(queued)
            return
        }
        // A slow client's hold counts what this pass gave its stream, not what the upstream sent: the two
        // differ where the relay re-encodes (`/v1/responses` events are ~1.25× the car's chunks; helper-90).
        if !self.request.streaming || self.stream.isWritable || self.machine.committed != id
            || self.holdForSlowClient(queued)
        {
            attempt.upstream?.consume(data.readableBytes)
        } else {
            attempt.unconsumed += data.readableBytes
        }
    }

    private func handle(_ item: SSERelay.Item, from id: Int) {
        switch item.kind {
        case .preamble:
            if self.machine.committed != id { self.relay.hold(item, from: id) }
        case .output:
            // Tokens after the answer's finish reason (a broken upstream) are not the client's.
            if self.machine.committed == id, self.relay.isAfterFinish(item) { return }
            if self.relay.wouldExceedLimits(item) { return self.finishOverLimit(id) }
            self.tokenArrived(item, from: id)
        case .usage:
            break  // recorded by the relay; the client's usage chunk is written at the end
        case .done:
            self.perform(self.machine.finished(id))
        case .upstreamError:
            self.attemptFailed(id, self.failure(answering: item.payload, from: id, label: "upstream_error"))
        case .malformed(let label):
            self.attemptFailed(id, .init(retryable: true, label: label))
        case .overLimit:
            self.finishOverLimit(id)
        }
    }

    private func tokenArrived(_ item: SSERelay.Item, from id: Int) {
        guard let attempt = self.attempts[id] else { return }
        if attempt.firstTokenAt == nil, let start = attempt.lease.exactReplayStart(resumeFrom: attempt.resumeFrom),
            start + attempt.skipped < self.machine.delivered  // cluster (#21): was `case .car`, exact only
        {
            // Token-exact continuation behind the stream: the client has this token already.
            attempt.skipped += 1
            return
        }
        if attempt.firstTokenAt == nil, attempt.resumeFrom > 0, self.machine.delivered > attempt.resumeFrom,
            attempt.lease.exactReplayStart(resumeFrom: attempt.resumeFrom) == nil
        {
            // A continuation asked to go on from the text at its opening (a prefix or text upstream), while a
            // departing car went on streaming: taking over, it would repeat what the client got since
            // (helper-110). Failed: the departing car goes on, or, lost meanwhile, a continuation from what
            // the client has takes its place.
            return self.attemptFailed(id, .init(retryable: true, label: Self.staleLabel))
        }
        let now = NIODeadline.now()
        let first = attempt.firstTokenAt == nil
        let action = first ? self.machine.firstToken(id) : self.machine.token(id)
        if first {
            attempt.firstTokenAt = now
            if case .car(_, let dispatch, _) = attempt.lease { self.core.registry.firstToken(dispatch) }
        } else if let last = attempt.lastTokenAt {
            self.core.metrics.interToken.recordNanoseconds((now - last).nanoseconds)
        }
        attempt.lastTokenAt = now
        attempt.tokens += 1
        switch action {
        case .commit(_, let sendHead, let losers):
            self.cancelLosers(losers, beatenBy: attempt)
            if attempt.reason == .hedge {
                self.core.metrics.hedgesWon.increment()
            }
            self.servingLease = attempt.lease
            self.servingRegion = attempt.servedRegion  // cluster (#21)
            self.blameRuntimeErrors()
            self.recordFirstToken(attempt, now: now, isFirstForClient: sendHead)
            if sendHead && self.request.streaming { self.sendStreamHead() }
            self.relay.commit(id, first: item, into: &self.output)
        case .forward:
            self.relay.deliver(item, from: id, into: &self.output)
        default:
            self.perform(action)
        }
        // The watchdog now counts: re-armed only if it comes before the time the timer is armed for.
        if first { self.armTimer(id) }
    }

    /// A run of tokens the relay passed through: counted as ``tokenArrived(_:from:)`` counts each.
    private func forwarded(_ count: Int, from attempt: Attempt, _ id: Int) {
        let now = NIODeadline.now()
        self.machine.forwarded(count, of: id)
        if let last = attempt.lastTokenAt {
            // The first of the run waited since the last token; the others came with it, in the same
            // read, and are not samples (~650 instructions each: a third of a passed-through token).
            self.core.metrics.interToken.recordNanoseconds((now - last).nanoseconds)
        }
        attempt.lastTokenAt = now
        attempt.tokens += count
    }

    private func recordFirstToken(_ attempt: Attempt, now: NIODeadline, isFirstForClient: Bool) {
        if case .car(_, let dispatch, _) = attempt.lease {
            let observed = (now - attempt.startedAt).nanoseconds
            self.core.metrics.observedCarTTFT.recordNanoseconds(observed)
            self.core.metrics.predictedTTFT.recordNanoseconds(Int64(dispatch.predictedTTFTMilliseconds * 1e6))
            self.core.metrics.predictionRatio.record(
                dispatch.predictedTTFTMilliseconds * 1e6 / Double(max(1, observed)))
        }
        if isFirstForClient {
            // Client-observed: a streamed answer's first token is written now; a whole answer's client
            // sees it only at the end (helper-108: its generation time was counted as the client's TTFT).
            if self.request.streaming { self.core.metrics.ttft.recordNanoseconds((now - self.started).nanoseconds) }
            self.clientFirstTokenAt = now  // #17: GenAI metrics (the first token generated)
        }
    }

    /// An attempt's upstream answered 429 or 503: busy.
    static let busyLabel = APIError.upstreamBusyCode
    /// A car that refused the stream (HTTP/2 REFUSED_STREAM): no free slot, or draining — busy, as a 503
    /// is (helper-107: every car refusing was a 502 `upstream_error` without Retry-After).
    static let refusedLabel = "refused"
    /// Whether `label` says its upstream was busy rather than broken.
    static func isBusy(_ label: String) -> Bool { label == Self.busyLabel || label == Self.refusedLabel }
    /// A continuation whose text fell behind the stream before its first token (``tokenArrived(_:from:)``).
    static let staleLabel = "stale_continuation"
    /// A car's runtime rejected the request itself (a 4xx).
    static let rejectedLabel = "runtime_rejected"

    func upstreamDidEnd(_ id: Int) {
        guard let attempt = self.attempts[id] else { return }
        guard attempt.status == 200 else {
            let status = attempt.status
            // Busy (429, 503): tried elsewhere, and if every upstream is, the client hears busy, not broken.
            if APIError.isBusy(status: status) {
                return self.attemptFailed(id, .init(retryable: true, label: Self.busyLabel))
            }
            if status >= 500 {
                return self.attemptFailed(id, self.failure(answering: attempt.errorBody, from: id, label: "status_5xx"))
            }
            // A rejection of the request passes through; any other 4xx is tried elsewhere and never
            // shown to the client: 401, 403 and 407 say the endpoint's key is wrong (its failure); 404
            // that it lacks this route or model, which says nothing of its health for others.
            if APIError.rejectsRequest(status: status) {
                // A car's plain 4xx is its rejection as its error event is (helper-98: it passed as it came).
                if case .car(_, let dispatch, _) = attempt.lease, self.machine.committed != id {
                    return self.attemptFailed(id, self.carRejected(attempt, status: status, car: dispatch.car))
                }
                return self.attemptFailed(id, .init(retryable: false, label: "status_4xx", status: status))
            }
            switch status {
            case 401, 403, 407, 408: return self.attemptFailed(id, .init(retryable: true, label: "status_\(status)"))
            case 404: return self.attemptFailed(id, .init(retryable: true, label: "status_404", upstreamAtFault: false))
            default: return self.attemptFailed(id, .init(retryable: true, label: "status_other"))
            }
        }
        if attempt.answer != nil { return self.answerArrived(id) }
        // A clean end is the answer's end only after a finish reason or `[DONE]` (which ends the request
        // before this): an upstream that stops without either — a body cut by a lying content-length, a
        // server that died behind a proxy that closed the chunked body cleanly — lost the stream, and it
        // fails over like any other loss instead of reaching the client as a complete answer.
        if !self.ended, self.machine.committed == id, !self.relay.deliveredFinish {
            return self.attemptFailed(id, .init(retryable: true, label: "truncated_stream"))
        }
        self.perform(self.machine.finished(id))
    }

    /// Body bytes of a whole answer: held (acknowledged at once — the bound, not the client, limits
    /// them), or the attempt ends when they pass the bound.
    private func answerPart(_ data: ByteBuffer, of attempt: Attempt, _ id: Int) {
        attempt.upstream?.consume(data.readableBytes)
        guard attempt.answer!.append(data) else {
            return self.attemptFailed(id, .init(retryable: false, label: CentralAnswer.tooLargeLabel))
        }
    }

    /// A whole answer ended: valid, it is the attempt's one token and its end — the client gets it
    /// as the answer; else the attempt failed (and another may be tried: nothing reached the client).
    private func answerArrived(_ id: Int) {
        guard let attempt = self.attempts[id], let answer = attempt.answer else { return }
        let whole: CentralAnswer.Whole
        switch answer.finish() {
        case .failed(let failure): return self.attemptFailed(id, failure)
        case .whole(let answer): whole = answer
        }
        let now = NIODeadline.now()
        let action = self.machine.firstToken(id)
        guard case .commit(_, let sendHead, let losers) = action else { return self.perform(action) }
        self.cancelLosers(losers, beatenBy: attempt)
        if attempt.reason == .hedge { self.core.metrics.hedgesWon.increment() }
        attempt.firstTokenAt = now
        attempt.lastTokenAt = now
        attempt.tokens = whole.completionTokens
        attempt.promptTokens = whole.promptTokens
        self.servingLease = attempt.lease
        self.servingRegion = attempt.servedRegion
        self.blameRuntimeErrors()
        // A whole answer's first token is the answer (central says nothing earlier): the GenAI TTFT's.
        self.recordFirstToken(attempt, now: now, isFirstForClient: sendHead)
        self.answerBody = whole.body
        self.answerUsage = Usage(
            promptTokens: whole.promptTokens ?? self.request.profile.promptTokens,
            completionTokens: whole.completionTokens)
        self.perform(self.machine.finished(id))
    }

    func upstream(_ id: Int, servedIn region: String) {
        self.attempts[id]?.servedRegion = region  // cluster (#21)
    }

    func upstream(_ id: Int, didFail failure: UpstreamFailure) {
        if id == self.opening {
            // Failed inside its own opening (a connection refused at once, a tunnel closing): the
            // attempt is not in the table yet, so the failure is heard on the loop's next turn —
            // dropped, the request would wait for its first-token deadline instead of failing over.
            let bound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
            return self.stream.eventLoop.execute { bound.value.upstream(id, didFail: failure) }
        }
        self.attemptFailed(id, .init(retryable: failure.retryable, label: failure.label))
    }

    /// A car's runtime rejected the request (its 4xx, before any token): the body is rebuilt in the
    /// gateway's words (``RuntimeRejection``), and the request is tried once elsewhere first (helper-62).
    private func carRejected(_ attempt: Attempt, status: Int, car: CarID) -> DispatchStateMachine.Failure {
        attempt.errorBody = RuntimeRejection.body(from: attempt.errorBody)
        // A car's status, in the few an app should act on: 421 would send an HTTP/2 client to
        // another connection, 499 is nginx's own (helper-63).
        let shown = [400, 413, 422].contains(status) ? status : 400
        guard let first = self.carRejection else {
            self.carRejection = (shown, attempt.errorBody, car)
            return .init(retryable: true, label: Self.rejectedLabel, upstreamAtFault: false)
        }
        (attempt.errorBody, self.refusingCar) = self.refusalToRelay(
            first: (first.body, first.car), second: attempt.errorBody, from: car)
        return .init(retryable: false, label: Self.rejectedLabel, status: shown)
    }

    /// The failure of an attempt that answered the error `body` (an error event, or a 5xx's body): a
    /// car whose runtime answered what the car path cannot carry (``APIError/carPathCannotCarry``: a
    /// tool call, several choices) sends the rest of the request to central capacity, since another
    /// car's runtime would answer the same; a car whose runtime was busy is a busy upstream.
    private func failure(answering body: ByteBuffer, from id: Int, label: String) -> DispatchStateMachine.Failure {
        let detail = APIError.detail(in: body)
        // What the upstream said reaches the client's 502 (helper-71: "json_schema is not supported"); a
        // car's words as plain text, marked as its runtime's (helper-97 had a car put `<script>` there).
        if let said = detail?.message, !said.isEmpty, let lease = self.attempts[id]?.lease {
            self.lastUpstreamMessage =
                lease.isCar ? "(a car's runtime) " + RuntimeRejection.plainText(said) : String(said.prefix(200))
        }
        guard let attempt = self.attempts[id], let code = detail?.code else {
            return .init(retryable: true, label: label)
        }
        // The runtime rejected the request itself (its 4xx, `fleet_status`), before any token (a stream
        // under way is not rejected, it failed): the client gets that status and error (helper-60: it was
        // a 502 that benched the car for every client). A car's is tried once elsewhere first, without
        // holding it against the car: cars differ (a smaller context), and one that lies must not fail
        // a request alone (helper-62). A second car's, or central's (`fleet-agent serve`), goes to the client.
        if self.machine.committed != id, JSONBody.contains(body, "fleet_status"),
            var rejection = try? JSON.decode(APIErrorBody.self, from: body.readableBytesView),
            let status = rejection.fleetStatus, APIError.rejectsRequest(status: status)
        {
            rejection.fleetStatus = nil
            attempt.errorBody = JSON.buffer(rejection)
            guard case .car(_, let dispatch, _) = attempt.lease else {
                return .init(retryable: false, label: Self.rejectedLabel, status: status)
            }
            return self.carRejected(attempt, status: status, car: dispatch.car)
        }
        guard case .car = attempt.lease else { return .init(retryable: true, label: label) }
        // A car whose runtime is busy: another upstream may have room.
        if code == APIError.upstreamBusyCode { return .init(retryable: true, label: Self.busyLabel) }
        guard APIError.carPathCannotCarry.contains(code) else {
            var failure = DispatchStateMachine.Failure(retryable: true, label: label)
            // The car's runtime answered a 5xx itself (`upstream_status_5xx`, the agent's 502 carrying it)
            // before any token: the car is up, and the request may be what failed (a poison request, which
            // fails on every car). The car is blamed only once another car serves the request
            // (``blameRuntimeErrors()``). Mid-answer it is a broken stream like any other (helper-81: a
            // lying car would have had the grace for streams it cut).
            guard code.hasPrefix("upstream_status_5"), self.machine.committed != id, attempt.firstTokenAt == nil,
                case .car(_, let dispatch, _) = attempt.lease
            else { return failure }
            self.runtimeErrorCars.append(dispatch.car)
            self.failedOtherwiseThanBusy = true
            failure.upstreamAtFault = false
            return failure
        }
        self.candidates.centralOnly = true
        // The request asked for what no car carries: the car is not to blame.
        return .init(retryable: true, label: code, upstreamAtFault: false)
    }

    /// Cancels the attempts `winner` beat to the client. A car attempt that started before the winner
    /// and still had no token when the winner's first came — the attempt a hedge rescued — had longer
    /// than the winner needed and gave nothing: it lost the race, and its car learns a lower bound of
    /// its time to first token and is passed over for a while (``Outcome/lostRaceAfterMilliseconds``).
    /// Before, a car whose runtime answers late or not at all (a 500 after 3 s, a stream that never
    /// starts) lost every race and was never told: each of its jobs cost a request the hedge's delay
    /// (helper-84, helper-87). Any other loser — a hedge the first attempt beat, one already streaming
    /// — says nothing of its car, as a job a client left does not.
    func cancelLosers(_ losers: [Int], beatenBy winner: Attempt) {
        let now = NIODeadline.now()
        for id in losers {
            guard let attempt = self.attempts[id] else { continue }
            guard attempt.lostRace(to: winner) else {
                self.cancel(id)
                continue
            }
            attempt.upstream?.cancel()
            var outcome = self.outcome(attempt, succeeded: true)
            outcome.lostRaceAfterMilliseconds = Double((now - attempt.startedAt).nanoseconds) / 1e6
            self.close(id, outcome: outcome)
            self.relay.close(attempt: id)
        }
    }

    func attemptFailed(_ id: Int, _ failure: DispatchStateMachine.Failure) {
        guard let attempt = self.attempts[id], !self.ended else { return }
        if self.machine.committed == id, self.relay.deliveredFinish {
            // The answer is whole (its finish reason was delivered): an upstream lost before its
            // `[DONE]` ends it as `[DONE]` would, rather than fail or start a whole answer again.
            attempt.upstream?.cancel()
            return self.perform(self.machine.finished(id))
        }
        if self.machine.committed == id, self.relay.reachedOutputLimit {
            // Lost after the last token the request allows, before its finish chunk: the answer is whole
            // too, and ends as a bound ends it (`length`). A continuation asked for one more token was
            // over the limit, and every continuation was spent so (helper-110).
            attempt.upstream?.cancel()
            self.relay.finishOverLimit(into: &self.output)
            return self.perform(self.machine.finished(id))
        }
        self.core.metrics.attemptFailed(label: failure.label)
        self.lastFailedLease = attempt.lease  // the audit line's route if nothing serves it (helper-132)
        if !self.failureLabels.contains(failure.label) { self.failureLabels.append(failure.label) }
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
        var busyFor: Int?
        if failure.label == Self.busyLabel {
            // The soonest any busy upstream expects room; one that said nothing, the gateway's 1 s.
            let seconds = attempt.retryAfter ?? 1
            busyFor = seconds
            self.busyRetryAfter = min(self.busyRetryAfter ?? .max, seconds)
        } else if failure.upstreamAtFault && failure.label != Self.refusedLabel {
            // (Not a car path that cannot carry the request: that upstream was not broken, only unable.)
            self.failedOtherwiseThanBusy = true
        }
        // A rejection of the client's request (a 4xx passed through), or a request for what the
        // upstream's kind cannot carry, is the upstream working as it should: it must not count
        // against its health. A busy upstream (a car's runtime, a central endpoint) is left alone for
        // the time it asked.
        let outcome = self.outcome(attempt, succeeded: !failure.upstreamAtFault)
        self.close(id, outcome: outcome, busyFor: busyFor, failure: failure.label)
        self.flush()
        // A `stream: false` answer with only thinking so far has no text to continue from.
        let continuable = self.request.streaming || !self.relay.delivered.isEmpty
        self.perform(self.machine.failed(id, failure, continuable: continuable))
    }
}
