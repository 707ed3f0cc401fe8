import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import Logging
import NIOCore

/// What the client is sent: the stream head, the end, errors, and the route headers and audit fields.
extension Dispatcher {

    func flush() {
        guard self.output.readableBytes > 0 else { return }
        self.stream.sendData(self.output, endStream: false)
        // Consumed, not replaced: the stream copies it out when the connection flushes, and the next
        // upstream read clears it (``reuseOutput()``) to write into the same storage, unallocated.
        self.output.moveReaderIndex(forwardBy: self.output.readableBytes)
    }

    /// Resets the consumed output buffer; without an allocation once the stream has let go of it.
    func reuseOutput() {
        if self.output.readableBytes == 0 { self.output.clear() }
    }

    func sendStreamHead() {
        var fields = self.routeHeaders(reserving: 2)
        fields.append(HTTPField(name: .contentType, value: "text/event-stream"))
        fields.append(HTTPField(name: .cacheControl, value: "no-cache"))
        self.stream.sendResponse(HTTPResponse(status: .ok, headerFields: fields), endStream: false)
    }

    func finishOverLimit(_ id: Int) {
        guard self.machine.committed == id else {
            // An attempt the client does not hear (before its first token, or a continuation still
            // catching up) past a bound: it failed; the relay's answer is not touched.
            return self.attemptFailed(id, .init(retryable: true, label: "over_limit"))
        }
        // Past a bound the upstream is still generating: stop it.
        self.attempts[id]?.upstream?.cancel()
        self.relay.finishOverLimit(into: &self.output)
        self.perform(self.machine.finished(id))
    }

    func finish() {
        if let id = self.machine.committed, let attempt = self.attempts[id] {
            // No reset here: after `[DONE]` the car's END_STREAM is on its way, and a RST_STREAM per
            // finished job counts against the car's rapid-reset protection (200 streams/s tripped it).
            self.close(id, outcome: self.outcome(attempt, succeeded: true))
        }
        let route = self.servedRoute
        // #20 (trust): hand a whole car answer (one car, no migration) to the auditor, off the request path.
        if case .car(let car, _, _)? = self.servingLease, self.machine.migrations == 0, let auditor = self.core.auditor
        {
            auditor.consider(
                vehicleID: car.vehicleID, pseudonym: car.pseudonym, zone: car.zone, model: self.request.model,
                chat: self.request.chat, body: self.request.body, text: self.relay.deliveredText)
        }
        self.core.metrics.routed(route)
        if let reported = self.relay.implausibleUsage { self.usageClamped(reported, route: route) }
        // The OpenTelemetry GenAI metrics of the served completion.
        let now = NIODeadline.now()
        self.core.metrics.genAI.record(
            operation: self.request.chat ? .chat : .textCompletion, model: self.request.model, route: route.label,
            zone: self.request.zone,
            firstTokenNanoseconds: self.clientFirstTokenAt.map { ($0 - self.started).nanoseconds },
            durationNanoseconds: (now - self.started).nanoseconds, usage: self.servedUsage,
            // A whole answer's tokens came at once: no time per token (helper-112: ~0 for each).
            deliveredTokens: self.answerUsage == nil ? self.deliveredTokens : 0)
        // The head of a stream already carried them; its trailers repeat them only after a migration.
        let headers = self.request.streaming && self.machine.migrations == 0 ? nil : self.routeHeaders()
        self.end(status: 200)  // before the last write (see ``end(status:)``)
        if self.request.streaming {
            let flushedBefore = self.output.readerIndex
            self.relay.finishStream(into: &self.output)
            self.flush()
            // An upstream's end, not its `[DONE]` in a read, finished it: its read counts nothing of this.
            if !self.inUpstreamRead { self.countLastBytes(self.output.readerIndex - flushedBefore) }
            self.stream.sendEnd(trailers: headers)
        } else {
            self.stream.sendResponse(
                status: .ok, contentType: "application/json",
                body: self.answerBody ?? self.relay.responseBody(model: self.request.model), headers: headers ?? [:])
        }
        self.stream.flushNow()  // the last bytes before the audit line queued by end(status:)
    }

    /// Says that the usage the upstreams reported passed the request's bounds (the client gets the
    /// bounded counts): a car that inflates `usage` bills the app for work it did not do.
    private func usageClamped(_ reported: Usage, route: GatewayMetrics.Route) {
        self.core.metrics.usageClamped(route)
        var metadata: Logger.Metadata = [
            "fleet.route": "\(route.label)",
            "fleet.usage.reported": "\(reported.promptTokens)+\(reported.completionTokens)",
            "fleet.usage.bounds": "\(self.relay.configuration.promptTokenBound)+\(self.relay.completionTokenBound)",
        ]
        if case .car(let car, _, _)? = self.servingLease { metadata["fleet.vehicle.id"] = "\(car.vehicleID)" }
        self.logger.warning(
            "Upstream reported usage past the request's bounds; the client gets the bounded counts", metadata: metadata)
    }

    /// Whether a request failed right after a car's rejection, with nothing run after it: no candidate
    /// for the retry, or the attempts spent on the rejection itself.
    static func endsOnRejection(_ reason: DispatchStateMachine.FailureReason) -> Bool {
        switch reason {
        case .noCapacity: true
        case .attemptsExhausted(let label): label == Self.rejectedLabel
        default: false
        }
    }

    func fail(_ reason: DispatchStateMachine.FailureReason, midStream: Bool) {
        // A car rejected the request (``carRejection``) and the one other try found nothing: the client
        // gets the rejection when nothing else in the zone serves the model, the zone's 503 when the
        // others are only busy. Not when they failed for their own reasons (a 502): a car that lies must
        // not turn the zone's 503 or 502 into the app's 4xx (helper-63).
        if !midStream, let rejection = self.carRejection, Self.endsOnRejection(reason) {
            self.carRejection = nil
            let tooLong = APIError.code(in: rejection.body) == APIError.contextLengthExceededCode
            if self.candidates.zoneBusyRetryAfter(excluding: rejection.car, fitting: tooLong) == nil
                && !self.yieldedToWaiter
            {
                self.rejectionBody = rejection.body
                self.refusingCar = rejection.car
                return self.fail(.rejected(status: rejection.status), midStream: false)
            }
            if reason != .noCapacity { return self.fail(.noCapacity, midStream: false) }
        }
        let error: APIError
        // Asking again gets the same answer: the SDKs must not (helper-64: the openai SDK retried a
        // tool call's 502 twice, three whole generations on the car's runtime).
        var final = false
        // The zone's refusal count (and its alert) sees a saturated zone as it sees an empty one.
        if reason == .noCapacity { self.core.metrics.fleetState.zoneRefused(self.request.zone) }
        switch reason {
        case .noCapacity:
            guard let seconds = self.candidates.zoneBusyRetryAfter ?? (self.yieldedToWaiter ? 1 : nil) else {
                // Central taken out for failing is expected back: retryable, when it is due (helper-131:
                // `x-should-retry: false` stopped the SDK while the endpoint came back within a second).
                error =
                    self.candidates.ejectedCentralRetryAfter.map {
                        .noCapacity(zone: self.request.zone, centralBackIn: $0)
                    }
                    ?? .noCapacity(zone: self.request.zone)
                break
            }
            // Capacity expected back (DESIGN.md: overload and refusals): retryable, with Retry-After —
            // the soonest a busy central endpoint asked for when that is all the zone has, else 1 s. A car
            // in its back-off after a failure counts (helper-63: its runtime's 401 said "busy").
            // helper-125: free cars too small for the prompt made "every car is busy" untrue.
            let which =
                self.candidates.passedOverForWindow
                    && self.candidates.zoneBusyRetryAfter(excluding: nil, fitting: true) != nil
                ? "whose context window holds this request (~\(self.request.profile.neededContextTokens) tokens)"
                : "that serves this model"
            error = .overloaded(
                "Every car and central endpoint in privacy zone '\(self.request.zone)' \(which) is busy or held back for a moment after a failure. Retry after \(seconds) s.",
                retryAfter: seconds)
            self.core.metrics.shedBusyZone()
            self.core.sawBusyZone(self.request.zone)
            self.refusedBusy = true
        case .attemptsExhausted(let label) where label == CentralAnswer.tooLargeLabel:
            error = .upstreamFailed(
                "The answer was larger than \(self.relay.configuration.maxAggregateBytes) bytes, the most the gateway holds for a request with 'stream': false; ask for fewer tokens, or stream it ('stream': true)."
            )
        case .attemptsExhausted(let label) where Self.isBusy(label) && !self.failedOtherwiseThanBusy:
            // Every upstream tried answered 429 or 503 (DESIGN.md, Contracts: overload and refusals): the
            // client may come back when the soonest of them said it would have room.
            let seconds = self.busyRetryAfter ?? 1
            error = .overloaded(
                "Every car and central endpoint tried for this request in privacy zone '\(self.request.zone)' is busy. Retry after \(seconds) s.",
                retryAfter: seconds)
        case .attemptsExhausted(let label) where APIError.carPathCannotCarry.contains(label):
            if let seconds = self.candidates.centralBusyRetryAfter {
                // Central must serve it, and the zone's central capacity is there but busy: come back.
                error = .overloaded(
                    "Only central capacity can serve this request, and every central endpoint in privacy zone '\(self.request.zone)' that serves this model is busy. Retry after \(seconds) s.",
                    retryAfter: seconds)
                break
            }
            if let seconds = self.candidates.ejectedCentralRetryAfter {
                // Out for failing and due back (helper-132: a final 502 said never to retry).
                error = .noCapacity(zone: self.request.zone, centralBackIn: seconds)
                break
            }
            let what =
                label == APIError.runtimeToolCallCode
                ? "with a function call cars do not relay (a legacy function_call)"
                : "with more than one choice, which cars do not relay"
            final = true
            error = .upstreamFailed(
                "The model answered \(what), and no central endpoint in privacy zone '\(self.request.zone)' could serve the request instead."
            )
        case .attemptsExhausted where self.retryFoundZoneBusy != nil:
            // An attempt failed, and the retry found the rest of the zone full: capacity is expected back,
            // as when the first attempt finds it full.
            let seconds = self.retryFoundZoneBusy ?? 1
            error = .overloaded(
                "An upstream failed to serve this request, and every other car and central endpoint in privacy zone '\(self.request.zone)' that serves this model is busy. Retry after \(seconds) s.",
                retryAfter: seconds)
            self.core.metrics.shedBusyZone()
            self.core.metrics.fleetState.zoneRefused(self.request.zone)
            self.refusedBusy = true
        case .attemptsExhausted(let label):
            let labels = self.failureLabels.isEmpty ? label : self.failureLabels.joined(separator: ", ")
            error = .upstreamFailed(
                "No car or central endpoint could serve the request after \(self.machine.attemptsRun) attempts (\(labels))."
                    + (self.lastUpstreamMessage.map { " The last upstream error: \($0)" } ?? "")
            )
        case .rejected(let status):
            let headers = self.routeHeaders()
            self.errorCode = APIError.code(in: self.rejectionBody).map { String($0.prefix(64)) } ?? "rejected"
            self.end(status: status)
            let body =
                self.request.responses == nil
                ? self.rejectionBody : APIError.renamingParam("messages", to: "input", in: self.rejectionBody)
            self.stream.sendResponse(
                status: .init(code: status), contentType: "application/json", body: body, headers: headers)
            return self.stream.flushNow()
        case .migrationLimit(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)) after \(self.machine.migrations) continuations, the most allowed.")
        case .noContinuationCandidate(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)) and no car or central endpoint in zone '\(self.request.zone)' can continue it."
            )
        case .notContinuable(let label):
            error = .upstreamFailed(
                "The stream was lost (\(label)); this request (n > 1, tools, a response schema or logprobs) cannot be continued elsewhere."
            )
        }
        // Mid-stream for the machine is after the first token; a `stream: false` client has had nothing
        // yet (its answer is sent whole), so it gets the error as a response, not an SSE event with no
        // head (an attack found HTTP/1.1 clients with an empty reply and HTTP/2 streams hanging).
        self.errorCode = error.code
        if midStream && self.request.streaming {
            let event = self.relay.clientErrorEvent(error)
            self.end(status: 502)
            self.flush()
            self.stream.sendData(event, endStream: true)
        } else {
            var headers = self.routeHeaders()
            if (error.code == "no_capacity_in_zone" && error.retryAfter == nil) || final {
                headers[.xShouldRetry] = "false"
            }
            // Appended: routeHeaders has none (the setter would search them first).
            if let seconds = error.retryAfter { headers.append(HTTPField(name: .retryAfter, value: String(seconds))) }
            self.end(status: error.status)
            self.stream.sendResponse(
                status: .init(code: error.status), contentType: "application/json", body: error.jsonBody(),
                headers: headers)
        }
        self.stream.flushNow()  // the last bytes before the audit line queued by end(status:)
    }

    /// Of two cars' refusals, the body to relay: when both refused the prompt as too long, the one from the
    /// car that said the larger context window (one that said none counts as the smallest), so the app
    /// learns the most the zone holds (helper-125, helper-126); else the second's. With the car that answered it.
    func refusalToRelay(first: (body: ByteBuffer, car: CarID), second: ByteBuffer, from car: CarID)
        -> (ByteBuffer, CarID)
    {
        guard APIError.code(in: first.body) == APIError.contextLengthExceededCode,
            APIError.code(in: second) == APIError.contextLengthExceededCode,
            self.saidWindow(of: first.car) >= self.saidWindow(of: car)
        else { return (second, car) }
        return first
    }

    /// The car whose rejection is relayed (``refusingCar``), while it is registered.
    var refusingCarDescriptor: CarDescriptor? { self.refusingCar.flatMap(self.core.registry.descriptor) }

    /// The context window `car` said for the request's model (0: not said, or the car left).
    private func saidWindow(of car: CarID) -> Int {
        self.core.registry.descriptor(car)?.models.first { $0.id == self.request.model }?.contextTokens ?? 0
    }

    func end(status: Int) {
        guard !self.ended else { return }
        self.ended = true
        self.capacityWaiter?.timer.cancel()
        self.capacityWaiter = nil
        self.stopWaiting(.gone)
        for id in Array(self.attempts.keys) { self.cancel(id) }
        self.onEnd(status)
    }

    /// The route of the serving attempt, for the request metrics: `car`, `replica` (cluster #21) or `central`.
    var servedRoute: GatewayMetrics.Route {
        switch self.servingLease {
        case .car: .car
        case .forward: .replica
        case .central, nil: .central
        }
    }

    /// Where the answer came from (DESIGN.md, Contracts: headers, and trailers after a failover).
    /// Every name here is distinct, so each field is appended: the subscript setter searches the
    /// fields for the name first (~1 k instructions a field, issue #19). `reserving` makes room for
    /// the caller's own fields.
    func routeHeaders(reserving extra: Int = 0) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(9 + extra)
        fields.append(.perMessage(.fleetRequestID, self.requestID))
        fields.append(HTTPField(name: .fleetZone, value: self.request.zone))
        fields.append(HTTPField(name: .fleetOriginRegion, value: self.request.origin.region))
        fields.append(HTTPField(name: .fleetAttempts, value: String(self.machine.attemptsRun)))
        if self.machine.migrations > 0 {
            fields.append(HTTPField(name: .fleetMigrations, value: String(self.machine.migrations)))
        }
        let lease = self.servingLease ?? self.attempts.values.first?.lease
        if let predicted = lease?.predictedTTFTMilliseconds {
            fields.append(HTTPField(name: .fleetPredictedTTFT, value: String(Int(predicted.rounded()))))
        }
        // Where it went, as its audit line says: nothing served it — the car whose rejection is relayed
        // (helper-125), else where it failed last (helper-136: a central endpoint's 502 had no
        // `x-fleet-route`); a refusal before any attempt names no route. A replica's region only once it
        // answered (cluster, #21); a vehicle only for a car.
        let place =
            lease?.auditPlace(servingRegion: self.servingRegion)
            ?? self.unservedPlace(servingRegion: self.servingRegion)
        guard place.route != "-" else { return fields }
        fields.append(HTTPField(name: .fleetRoute, value: place.route))
        if place.region != "-" { fields.append(HTTPField(name: .fleetRegion, value: place.region)) }
        if place.route == "car" { fields.append(HTTPField(name: .fleetVehicle, value: place.vehicle)) }
        return fields
    }

    /// What the audit line and the dashboard say about where a request went.
    typealias AuditFields = (
        route: String, region: String, vehicle: String, attempts: Int, tokens: Int, migrations: Int
    )

    /// Output tokens the client got: a whole answer's (``CentralAnswer``), or those the relay delivered.
    var deliveredTokens: Int { self.answerUsage?.completionTokens ?? self.relay.deliveredTokens }

    /// The usage the client was given: a whole answer's, or the relay's (the upstreams' reported
    /// counts within the request's bounds, the gateway's estimates where none was reported).
    var servedUsage: Usage { self.answerUsage ?? self.relay.usage }

    /// For the audit line: where the answer was served, never what it said.
    var auditFields: AuditFields {
        // A method on the stored lease, not a copy of it (`servingLease ?? lastFailedLease` made one: an
        // `AttemptLease` copy and generic metadata lookups, ~1,500 instructions a stream).
        let place =
            self.servingLease?.auditPlace(servingRegion: self.servingRegion) ?? self.unservedPlace(servingRegion: nil)
        return (
            place.route, place.region, place.vehicle, self.machine.attemptsRun, self.deliveredTokens,
            self.machine.migrations
        )
    }

    /// Where a request nothing served went: the car whose rejection is relayed, else where it failed last
    /// (helper-131: a central endpoint's 500s logged `fleet.route=-`), else nowhere. `servingRegion`: a
    /// replica's, for a forward that failed after it answered (the headers name it; the audit line does not).
    private func unservedPlace(servingRegion: String?) -> (route: String, region: String, vehicle: String) {
        if let refusing = self.refusingCarDescriptor { return ("car", refusing.region, refusing.pseudonym) }
        return self.lastFailedLease?.auditPlace(servingRegion: servingRegion) ?? ("-", "-", "-")
    }

    /// The request is served by a car: the cars whose runtime answered it with a 5xx before are blamed for
    /// it (``FleetRegistry/blameRuntimeError(_:now:)``) — another car could serve it, so the request was
    /// not the cause.
    func blameRuntimeErrors() {
        guard !self.runtimeErrorCars.isEmpty else { return }
        // Another car: central serving it says less (helper-83: a prompt that crashes the cars' runtime,
        // llama.cpp, may be one central's vLLM serves; blamed, the same prompt three times benched them all).
        guard case .car(_, let lease, _)? = self.servingLease else { return self.runtimeErrorCars = [] }
        for car in self.runtimeErrorCars where car != lease.car {
            if let news = self.core.registry.blameRuntimeError(car, now: self.core.now),
                let descriptor = self.core.registry.descriptor(car)
            {
                self.core.logCarHealth(news, car: descriptor, failure: "upstream_status_5xx")
            }
        }
        self.runtimeErrorCars = []
    }
}
