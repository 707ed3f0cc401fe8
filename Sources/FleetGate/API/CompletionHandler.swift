import CoreMetrics
import FleetConfiguration
import FleetGeo
import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
import Logging
import NIOCore

/// The client side of one `POST /v1/chat/completions`, `/v1/completions` or `/v1/responses`, on
/// the client's stream and event loop.
///
/// Responsibilities:
/// 1. read the body within its size and time limits (413, 408) — the API key was checked on the
///    head by ``APIResponder``, so no unauthenticated byte is buffered;
/// 2. admit the request against the in-flight bound (429), validate it (``RequestValidator``), and
///    hand it to a ``Dispatcher``, which answers;
/// 3. pass the client's stream events on: writability (flow-control credit for the upstream) and
///    its going away (every upstream is cancelled, so engines stop);
/// 4. write one audit line per request — ids, origin, zone, route, pseudonym, counts — never
///    prompt or completion text.
final class CompletionHandler: HTTPStreamDelegate, LoopTimerTarget {
    let core: GatewayCore
    let stream: any HTTPStream
    let head: HTTPRequest
    let connection: HTTPConnectionInfo
    let api: ClientAPI
    let route: String
    let requestID: String
    let started = NIODeadline.now()
    /// #17: the request's span in the app's trace (or a new trace), and a logger whose every line
    /// carries `trace_id` and `span_id`.
    let trace: TraceParent
    /// The app's `tracestate`, kept only with a valid `traceparent` (W3C Trace Context §3.3).
    let traceState: String?
    let logger: RequestLogger

    private var body: BodyAccumulator
    /// Body bytes counted against the gateway-wide bound until the stream closes.
    private var reservedBodyBytes = 0
    /// The body's deadline (408), on the loop's ``LoopTimers``: nearly every body arrives with its
    /// headers and the deadline is cancelled in the same read, which costs a slot cleared (issue #19).
    private var bodyTimer: LoopTimers.Token?
    /// The loop's per-request deadlines (the loop's own; the request's when it has no ``load``).
    private let timers: LoopTimers
    private var dispatcher: Dispatcher?
    private var validated: ValidatedRequest?
    private var admitted = false
    /// edge (#18): the request's hold on its application key's quota.
    private var lease: KeyLease?
    private var answered = false
    /// The status the dispatcher ended the request with (its metrics' and audit line's).
    private var endStatus: Int?
    /// The loop's admission, released when the stream closes (issue #19).
    private var load: EventLoopLoad?

    init(
        core: GatewayCore, stream: any HTTPStream, request: HTTPRequest, connection: HTTPConnectionInfo, api: ClientAPI,
        load: EventLoopLoad?
    ) {
        self.core = core
        self.load = load
        self.stream = stream
        self.head = request
        self.connection = connection
        self.api = api
        self.route = api.route
        // edge (#18 row 11): only a well-formed client id reaches headers and log fields.
        self.requestID = RequestID(header: request.headerFields[.fleetRequestID]).value
        let (trace, incoming) = RequestLogger.span(of: request)
        self.trace = trace
        self.traceState =
            incoming == nil ? nil : request.headerFields[.tracestate].flatMap { $0.utf8.count <= 512 ? $0 : nil }
        self.logger = RequestLogger(base: core.logger, trace: trace, incoming: incoming)
        self.body = BodyAccumulator(limit: core.configuration.maxBodyBytes)
        self.timers = load?.timers ?? LoopTimers(eventLoop: stream.eventLoop)
        self.bodyTimer = self.timers.schedule(at: stream.eventLoop.now + core.configuration.bodyTimeout, self)
    }

    /// The body's deadline: the body did not all arrive in time.
    func loopTimerFired(_ tag: Int) {
        self.bodyTimer = nil
        self.answer(.requestTimeout)
        // HTTP/2 drains the rest of the request after the answer (a reset now would overtake the
        // 408's body in nghttp2's queue); HTTP/1.1 closes the connection.
        if !(self.stream is HTTP2Stream) { self.stream.reset(.cancel) }
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        guard !self.answered else { return self.stream.consume(data.readableBytes) }
        // Bodies held at once are bounded over all requests, not only per request (issue #18).
        guard self.core.reserveBody(data.readableBytes) else {
            self.stream.consume(data.readableBytes)
            // Answered at once; whatever still arrives is read and dropped, never held (on HTTP/2
            // by the connection, which resets the stream with NO_ERROR past a bound; RFC 9113 §8.1).
            // answer(_:) lets the part held go now, not when the client has finished sending the rest.
            self.answer(.overloaded("The gateway holds too many request bodies at once; retry shortly."))
            return
        }
        self.reservedBodyBytes += data.readableBytes
        if !self.body.append(data, consumingOn: self.stream) {
            self.answer(.bodyTooLarge(limit: self.body.limit))
        }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.cancelBodyTimer()
        guard !self.answered else { return }
        guard self.core.admitRequest() else {
            return self.answer(.overloaded("Too many requests in flight at the gateway; retry shortly."))
        }
        self.admitted = true
        var request: ValidatedRequest
        do throws(APIError) {
            request = try RequestValidator(core: self.core).validate(
                head: self.head, connection: self.connection, body: self.body.buffer, api: self.api)
            // edge (#18): the key's models, request and token rates, concurrent streams, route.
            let lease = try self.core.keys.admit(
                authorization: self.head.headerFields[.authorization], model: request.model, now: self.core.now)
            self.lease = lease
            request.centralOnly = request.centralOnly || lease.centralOnly
        } catch {
            return self.answer(error)
        }
        // Only a request that may run fills the hedge budget (helper-87: refused ones kept it full).
        self.core.hedgeBudget.deposit()
        request.traceParent = self.trace.description  // #17
        request.traceState = self.traceState
        self.validated = request
        self.answered = true
        let loopBound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        let dispatcher = Dispatcher(
            core: self.core, stream: self.stream, request: request, requestID: self.requestID,
            route: self.api.upstreamRoute, started: self.started, logger: self.logger, timers: self.timers
        ) { status in loopBound.value.ended(status: status) }
        self.dispatcher = dispatcher
        dispatcher.start()
    }

    func streamWritabilityDidChange(isWritable: Bool) {
        if isWritable { self.dispatcher?.clientWritable() }
    }

    func streamDidClose(error: HTTPStreamError?) {
        self.cancelBodyTimer()
        self.core.releaseBody(self.reservedBodyBytes)
        self.reservedBodyBytes = 0
        // edge (#18): return the key's stream, charge its tokens.
        // Prompt tokens estimated as the validator does (~4 body bytes each), plus the tokens delivered.
        let tokens = self.body.buffer.readableBytes / 4 + (self.dispatcher?.auditFields.tokens ?? 0)
        self.lease?.finish(tokens: tokens, now: self.core.now)
        if let dispatcher = self.dispatcher {
            // helper-94: not for a request that ended in an error (a 502 after its car was lost).
            if error != nil, self.endStatus == 200, dispatcher.heldForSlowClient > 0 {
                self.heldAnswerLost(bytes: dispatcher.heldForSlowClient)
            }
            // Past the drain's grace the gateway closes what is still open: its cut, not the client's
            // leaving (helper-99: these were audited 499, "client went away").
            dispatcher.clientGone(byShutdown: self.core.drainGraceOver)
        } else if !self.answered {
            self.answered = true
            self.core.metrics.request(route: self.route, status: 499)
        }
        self.releaseAdmission()
        self.load?.finished()
        self.load = nil
        self.dispatcher = nil
    }

    /// helper-93: a request the gateway ended whole (its audit line says 200) whose client then left with
    /// part of the held answer unwritten. Its id and the bytes, never their text.
    private func heldAnswerLost(bytes: Int) {
        self.core.metrics.heldAnswersLost.increment()
        self.logger.info(
            "The client left before the answer held for it was written",
            metadata: ["fleet.request.id": "\(self.requestID)", "fleet.held_bytes": "\(bytes)"])
    }

    private func cancelBodyTimer() {
        if let timer = self.bodyTimer { self.timers.cancel(timer) }
        self.bodyTimer = nil
    }

    private func releaseAdmission() {
        if self.admitted {
            self.admitted = false
            self.core.requestEnded()
        }
    }

    /// Answers with an error before dispatch began.
    private func answer(_ error: APIError) {
        guard !self.answered else { return }
        self.answered = true
        self.cancelBodyTimer()
        var headers = HTTPFields()
        headers.append(.perMessage(.fleetRequestID, self.requestID))
        if let seconds = error.retryAfter { headers[.retryAfter] = String(seconds) }  // edge (#18)
        self.stream.sendResponse(
            status: .init(code: error.status), contentType: "application/json", body: error.jsonBody(),
            headers: headers)
        self.core.metrics.request(route: self.route, status: error.status)
        self.audit(status: error.status, served: self.dispatcher?.auditFields, errorType: error.code)
        // Nothing more of the body is held or counted (408, 413, 503 before its end; a refusal after).
        self.core.releaseBody(self.reservedBodyBytes)
        self.reservedBodyBytes = 0
        if self.body.buffer.readableBytes > 0 { self.body = BodyAccumulator(limit: self.body.limit) }
    }

    /// The dispatcher ended the request.
    private func ended(status: Int) {
        self.endStatus = status
        self.core.metrics.request(route: self.route, status: status)
        var unlogged = 0
        if self.dispatcher?.refusedBusy == true {
            self.load?.upstreamBusy()
            // Counted (`fleet_requests_shed_total{reason="zone_busy"}`); past the budget, no line (nor
            // an entry in the dashboard's recent decisions, which samples them as the log does).
            if self.core.logger.logLevel <= .info {
                let budget = self.core.busyRefusalLog.take(now: self.core.now)
                guard budget.log else { return }
                unlogged = budget.unlogged
            }
        }
        // The audit line after the answer's last bytes: the connection's flush is already queued on
        // this loop, and formatting and writing the line (~60 µs) kept a burst's answer waiting.
        let served = self.dispatcher?.auditFields
        // Why a request failed, on its one line (helper-70: a 502 at info said nothing of why): the
        // code the client got and what each failed attempt ran into. Not on a 200's line.
        let errorType =
            status >= 400
            ? [self.dispatcher?.errorCode, self.dispatcher?.failureLabels.joined(separator: ",")]
                .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ":")
            : nil
        let loopBound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        self.stream.eventLoop.execute {
            loopBound.value.audit(status: status, served: served, errorType: errorType, unlogged: unlogged)
        }
    }

    /// The `Request served` line's fields, sorted by key and rendered as they are: no metadata
    /// dictionary and no sort a request (issue #19); typed as the logger takes them (an unlabelled tuple
    /// array was converted element by element). `unlogged`: refusals before this one that had no line
    /// (``RefusalLogBudget``: ``APIResponder``'s for requests refused on their head, the core's for
    /// requests refused after routing because their zone was busy).
    static func auditFields(
        requestID: String, status: Int, errorType: String?, origin: Origin?, zone: String, route: String,
        region: String, vehicle: String, counts: (attempts: Int, migrations: Int, tokens: Int), unlogged: Int = 0
    ) -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = [
            ("fleet.attempts", String(counts.attempts)),
            ("fleet.migrations", String(counts.migrations)),
            ("fleet.origin.country", origin?.country ?? "-"),
            ("fleet.origin.region", origin?.region ?? "-"),
            ("fleet.region", region),
            ("fleet.request.id", requestID),
            ("fleet.route", route),
            ("fleet.status", String(status)),
            ("fleet.tokens", String(counts.tokens)),
        ]
        if unlogged > 0 { fields.append(("fleet.unlogged", String(unlogged))) }
        fields.append(("fleet.vehicle", vehicle))
        fields.append(("fleet.zone", zone))
        if let errorType, !errorType.isEmpty { fields.insert(("error.type", errorType), at: 0) }
        return fields
    }

    /// One audit line per request: ids, origin, zone, route, pseudonym — never prompt or completion text;
    /// for a failed one, `error.type`: the code the client got, then the failed attempts' labels.
    private func audit(status: Int, served: Dispatcher.AuditFields?, errorType: String? = nil, unlogged: Int = 0) {
        let origin = self.validated?.origin
        let zone = self.validated?.zone ?? "-"
        let (route, region, vehicle) = served.map { ($0.route, $0.region, $0.vehicle) } ?? ("-", "-", "-")
        let (attempts, migrations, tokens) = served.map { ($0.attempts, $0.migrations, $0.tokens) } ?? (0, 0, 0)
        let fields = Self.auditFields(
            requestID: self.requestID, status: status, errorType: errorType, origin: origin, zone: zone,
            route: route, region: region, vehicle: vehicle, counts: (attempts, migrations, tokens), unlogged: unlogged)
        self.logger.log(level: .info, "Request served", sortedFields: fields)
        // #17: the dashboard's recent decisions (the same fields as the audit line).
        self.core.decisions.record(
            .init(
                time: Date().timeIntervalSince1970, requestID: self.requestID, status: status,
                originRegion: origin?.region ?? "-", zone: zone, route: route, region: region, vehicle: vehicle,
                attempts: attempts, migrations: migrations, tokens: tokens,
                reason: RecentDecisions.reason(
                    status: status, route: route, attempts: attempts, migrations: migrations)))
    }
}
