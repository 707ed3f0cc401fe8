import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import Logging
import NIOCore

/// Serves one `POST /v1/chat/completions` or `/v1/completions` on the client's event loop.
///
/// Responsibilities:
/// 1. read the body within its size limit and time limit (413, 408), authenticate (401), validate (400, 404);
/// 2. resolve the origin (peer, or trusted `X-Forwarded-For`) to a region and privacy zone, tightened —
///    never loosened — by `x-fleet-residency`; the zone is a hard filter before any ranking;
/// 3. choose a car and open a job stream on its tunnel; on failure before the first token, or no
///    first token within ``GatewayConfiguration/firstTokenTimeout``, try the next car;
///    no capacity in the zone → 503 `no_capacity_in_zone`;
/// 4. relay each SSE event the moment it arrives; give the car's stream flow-control credit only as
///    the client's stream drains, so a slow reader slows its own car stream and nothing else;
/// 5. when the client goes away, reset the car's stream (CANCEL) so its engine stops;
/// 6. for `stream: false`, collect the events and answer one JSON object.
///
/// No prompt or completion text is ever logged.
final class CompletionHandler: HTTPStreamDelegate, UpstreamEvents {
    let core: GatewayCore
    let stream: any HTTPStream
    let request: HTTPRequest
    let connection: HTTPConnectionInfo
    let chat: Bool
    let route: String
    let requestID: String
    let started = NIODeadline.now()
    let logger: Logger

    var body: BodyAccumulator
    var bodyTimer: Scheduled<Void>?
    var clientGone = false
    var finished = false

    // Routing.
    var model = ""
    var streaming = false
    var clientWantsUsage = false
    var origin: Origin?
    var zone = ""
    var upstreamRequest: HTTPRequest?
    var upstreamBody = ByteBuffer()
    var tried: [CarID] = []
    var profile: RequestProfile?
    /// The scheduler's ranked choices not yet tried.
    var choices: [Choice] = []
    var dispatch: Lease?
    var predictedTTFT: Double?
    var upstreamStartedAt = NIODeadline.now()
    var firstTokenAt: NIODeadline?
    var attempts = 0
    var upstream: (any Upstream)?
    /// The car serving the current attempt.
    var car: CarDescriptor?
    var centralEndpoint: CentralDirectory.Endpoint?
    var triedCentral: Set<String> = []
    var parsed: CompletionRequest?
    var firstTokenTimer: Scheduled<Void>?

    // Relay.
    var upstreamStatus = 0
    var upstreamErrorBody = ByteBuffer()
    var sse = SSE.Decoder()
    var events = 0
    var headersSent = false
    var unconsumed = 0
    var lastEventAt: NIODeadline?
    var aggregate = Aggregate()
    var held: [SSE.Decoder.Event] = []
    /// Counted against ``GatewayConfiguration/maxInFlightRequests`` until the stream closes.
    var admitted = false
    var upstreamReleased = false

    init(core: GatewayCore, stream: any HTTPStream, request: HTTPRequest, connection: HTTPConnectionInfo, chat: Bool) {
        self.core = core
        self.stream = stream
        self.request = request
        self.connection = connection
        self.chat = chat
        self.route = chat ? "/v1/chat/completions" : "/v1/completions"
        let given = request.headerFields[HTTPField.Name(FleetHeader.requestID)!]
        self.requestID = given.flatMap { $0.count <= 128 && !$0.isEmpty ? $0 : nil } ?? UUID().uuidString.lowercased()
        self.body = BodyAccumulator(limit: core.configuration.maxBodyBytes)
        self.logger = core.logger
        let loopBound = NIOLoopBound(self, eventLoop: stream.eventLoop)
        self.bodyTimer = stream.eventLoop.scheduleTask(in: core.configuration.bodyTimeout) {
            let handler = loopBound.value
            handler.fail(.requestTimeout)
            handler.stream.reset(.cancel)
        }
    }

    // MARK: Client stream

    func streamDidReceiveData(_ data: ByteBuffer) {
        if !self.body.append(data, consumingOn: self.stream) && !self.finished {
            self.fail(.bodyTooLarge(limit: self.body.limit))
        }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.bodyTimer?.cancel()
        guard !self.finished else { return }
        guard self.core.admitRequest() else {
            return self.fail(.rateLimited("Too many requests in flight; retry shortly."))
        }
        self.admitted = true
        do throws(APIError) {
            try self.prepare()
        } catch {
            return self.fail(error)
        }
        self.tryNextCar()
    }

    func streamWritabilityDidChange(isWritable: Bool) {
        if isWritable && self.unconsumed > 0 {
            self.upstream?.consume(self.unconsumed)
            self.unconsumed = 0
        }
    }

    func streamDidClose(error: HTTPStreamError?) {
        self.bodyTimer?.cancel()
        self.firstTokenTimer?.cancel()
        if self.admitted {
            self.admitted = false
            self.core.requestEnded()
        }
        if !self.finished {
            // The client went away: stop the car's engine.
            self.clientGone = true
            self.finished = true
            self.upstream?.cancel()
            self.releaseUpstream(succeeded: true)
            self.core.metrics.request(route: self.route, status: 499)
        }
        self.upstream = nil
    }

    // MARK: Validation and routing

    private func prepare() throws(APIError) {
        guard self.core.isAuthorized(self.request.headerFields[.authorization]) else { throw .invalidAPIKey }
        let parsed = try JSON.decodeRequest(CompletionRequest.self, from: self.body.buffer)
        if self.chat && (parsed.messages ?? []).isEmpty {
            throw .invalidRequest("'messages' must be a non-empty array.", param: "messages")
        }
        if !self.chat && parsed.prompt == nil {
            throw .invalidRequest("Missing required parameter: 'prompt'.", param: "prompt")
        }
        if let limit = parsed.outputLimit, limit < 1 || limit > 1 << 16 {
            throw .invalidRequest("'max_tokens' must be between 1 and 65536.", param: "max_tokens")
        }
        self.model = parsed.model
        self.streaming = parsed.stream ?? false
        self.clientWantsUsage = parsed.streamOptions?.includeUsage ?? false
        guard self.core.registry.serves(model: parsed.model) || self.core.central.models().contains(parsed.model)
        else {
            throw .modelNotFound(parsed.model)
        }
        self.parsed = parsed
        var objective = self.core.configuration.defaultTTFTObjectiveMilliseconds
        if let slo = self.request.headerFields[HTTPField.Name(FleetHeader.sloTTFT)!] {
            guard let value = Double(slo), value >= 1, value <= 600_000 else {
                throw .invalidRequest(
                    "x-slo-ttft-ms '\(slo.prefix(32))' must be a number of milliseconds between 1 and 600000.",
                    param: FleetHeader.sloTTFT)
            }
            objective = value
        }

        let origin = self.resolveOrigin()
        self.origin = origin
        self.zone = origin.zone
        if let residency = self.request.headerFields[HTTPField.Name(FleetHeader.residency)!] {
            // A client may tighten the zone, never loosen it. Zones are disjoint, so only the origin's own zone is allowed.
            guard residency == origin.zone else {
                throw .invalidRequest(
                    "x-fleet-residency '\(residency.prefix(32))' does not overlap the origin's zone '\(origin.zone)'.",
                    param: FleetHeader.residency)
            }
        }
        // What the scheduler may know: sizes and objectives, never the text. A prompt token is
        // taken as ~4 bytes of the request body (the body also holds JSON punctuation: an overestimate).
        self.profile = RequestProfile(
            model: parsed.model, zone: origin.zone, promptTokens: max(1, self.body.buffer.readableBytes / 4),
            expectedOutputTokens: min(parsed.outputLimit ?? 256, 1_024), ttftObjectiveMilliseconds: objective,
            tpotObjectiveMilliseconds: self.core.configuration.tpotObjectiveMilliseconds)
        // The car always streams with usage (the header says so; the client's bytes go through
        // unchanged); the gateway aggregates for stream:false and strips usage if unwanted.
        self.upstreamBody = self.body.buffer
        var upstream = HTTPRequest(method: .post, scheme: "http", authority: "car", path: self.route)
        upstream.headerFields[.contentType] = "application/json"
        upstream.headerFields[HTTPField.Name(FleetHeader.streamMode)!] = "sse-usage"
        upstream.headerFields[HTTPField.Name(FleetHeader.requestID)!] = self.requestID
        self.upstreamRequest = upstream
    }

    private func resolveOrigin() -> Origin {
        let peer = self.connection.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
        let forwarded = self.request.headerFields[values: HTTPField.Name("x-forwarded-for")!]
        let client = self.core.clientAddresses.resolve(peer: peer, forwardedFor: forwarded)
        return self.core.geo.current.resolver.resolve(client)
    }

    /// Asks the scheduler for a ranked list (cars, and central when it is predicted to do better
    /// or no car fits), excluding the cars already tried.
    private func decide() {
        guard let profile = self.profile else { return }
        // #13: central's prediction is learned per prompt size.
        let central = self.core.central.option(model: self.model, zone: self.zone, promptTokens: profile.promptTokens)
        let start = NIODeadline.now()
        let decision = self.core.registry.decide(profile, central: central, excluding: self.tried, now: self.core.now)
        self.core.metrics.decisionTime.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
        self.core.metrics.decision(firstChoice: decision.choices.first)
        self.choices = decision.choices
    }

    private func tryNextCar() {
        var decided = false
        while self.attempts < self.core.configuration.maxAttempts {
            if self.choices.isEmpty {
                if decided { break }
                self.decide()
                decided = true
                if self.choices.isEmpty { break }
            }
            let choice = self.choices.removeFirst()
            guard let id = choice.car else {
                if self.openCentral(predictedTTFT: choice.predictedTTFTMilliseconds) { return }
                continue
            }
            guard !self.tried.contains(id) else { continue }
            self.tried.append(id)
            guard let profile = self.profile, let car = self.core.registry.descriptor(id),
                car.zone == self.zone,  // invariant, checked twice on purpose
                let tunnel = self.core.tunnels.handle(for: id),
                let dispatch = self.core.registry.acquire(choice, for: profile, now: self.core.now)
            else { continue }
            self.attempts += 1
            self.car = car
            self.dispatch = dispatch
            self.predictedTTFT = dispatch.predictedTTFTMilliseconds
            self.resetUpstreamState()
            self.upstream = CarUpstream.open(
                tunnel: tunnel, request: self.upstreamRequest!, body: self.upstreamBody, attempt: self.attempts,
                relay: NIOLoopBound(self, eventLoop: self.stream.eventLoop))
            self.armFirstTokenTimer()
            return
        }
        // No car fits: central capacity in the same zone, never outside it.
        if self.attempts <= self.core.configuration.maxAttempts,
            self.openCentral(
                predictedTTFT: self.core.central.option(model: self.model, zone: self.zone)?.predictedTTFTMilliseconds)
        {
            return
        }
        self.car = nil
        if self.attempts == 0 {
            self.fail(.noCapacity(zone: self.zone))
        } else {
            self.fail(
                .upstreamFailed("No car or central endpoint could serve the request after \(self.attempts) attempts."))
        }
    }

    private func resetUpstreamState() {
        self.upstreamStatus = 0
        self.upstreamReleased = false
        self.sse = SSE.Decoder()
        self.held.removeAll()
        self.upstreamStartedAt = NIODeadline.now()
    }

    /// Opens a stream on central capacity in the request's zone; false when none has room.
    private func openCentral(predictedTTFT: Double?) -> Bool {
        guard let origin = self.origin, let client = self.core.httpClient,
            let endpoint = self.core.central.acquire(
                model: self.model, zone: self.zone, preferring: origin.region, excluding: self.triedCentral)
        else { return false }
        precondition(endpoint.zone == self.zone, "Internal inconsistency: central endpoint outside the zone")
        self.triedCentral.insert(endpoint.baseURL)
        self.attempts += 1
        self.car = nil
        self.dispatch = nil
        self.centralEndpoint = endpoint
        self.predictedTTFT = predictedTTFT
        self.resetUpstreamState()
        self.upstream = CentralUpstream.open(
            client: client, endpoint: endpoint, path: String(self.route.dropFirst(3)),
            body: self.centralBody(), requestID: self.requestID, attempt: self.attempts,
            relay: NIOLoopBound(self, eventLoop: self.stream.eventLoop))
        self.armFirstTokenTimer()
        return true
    }

    /// The body for a central endpoint, a generic OpenAI-compatible server: the client's request
    /// with `stream: true` and usage (it does not know `x-fleet-stream`). Re-encoded only on this path.
    private func centralBody() -> ByteBuffer {
        guard var parsed = self.parsed else { return self.upstreamBody }
        parsed.stream = true
        parsed.streamOptions = StreamOptions(includeUsage: true)
        return JSON.buffer(parsed)
    }

    private func armFirstTokenTimer() {
        self.firstTokenTimer?.cancel()
        let attempt = self.attempts
        let loopBound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
        self.firstTokenTimer = self.stream.eventLoop.scheduleTask(in: self.core.configuration.firstTokenTimeout) {
            loopBound.value.upstream(attempt, didFail: UpstreamFailure(retryable: true, label: "first_token_timeout"))
        }
    }

    private func releaseUpstream(succeeded: Bool) {
        guard !self.upstreamReleased else { return }
        self.upstreamReleased = true
        if let dispatch = self.dispatch {
            self.core.registry.finish(dispatch, self.outcome(succeeded: succeeded), now: self.core.now)
        } else if let endpoint = self.centralEndpoint {
            // #13: central learns from its outcomes as a car does.
            self.core.central.release(
                endpoint, outcome: self.outcome(succeeded: succeeded), promptTokens: self.profile?.promptTokens ?? 1)
        }
    }

    /// What the car's job showed, for the scheduler to learn from. Events stand in for tokens
    /// (one token per event in the car protocol; the role, finish and usage events are discounted).
    private func outcome(succeeded: Bool) -> Outcome {
        guard let first = self.firstTokenAt else {
            return Outcome(ttftMilliseconds: nil, tpotMilliseconds: nil, outputTokens: 0, succeeded: succeeded)
        }
        let ttft = Double((first - self.upstreamStartedAt).nanoseconds) / 1e6
        let tokens = max(1, self.events - (self.events > 3 ? 3 : 0))
        var tpot: Double?
        if let last = self.lastEventAt, tokens >= 2 {
            tpot = Double((last - first).nanoseconds) / 1e6 / Double(tokens - 1)
        }
        return Outcome(
            ttftMilliseconds: ttft, tpotMilliseconds: tpot, promptTokens: self.aggregate.usage?.promptTokens,
            outputTokens: tokens, succeeded: succeeded)
    }

    // MARK: Upstream events

    func upstream(_ attempt: Int, didReceiveStatus status: Int) {
        guard attempt == self.attempts, !self.finished else { return }
        self.upstreamStatus = status
    }

    func upstream(_ attempt: Int, didReceive data: ByteBuffer) {
        guard attempt == self.attempts, !self.finished else { return }
        guard self.upstreamStatus == 200 else {
            if self.upstreamErrorBody.readableBytes < 16 * 1024 {
                var data = data
                self.upstreamErrorBody.writeBuffer(&data)
            }
            self.upstream?.consume(data.readableBytes)
            return
        }
        let decoded: [SSE.Decoder.Event]
        do { decoded = try self.sse.feed(data) } catch {
            return self.upstream(attempt, didFail: UpstreamFailure(retryable: false, label: "bad_sse"))
        }
        var out = ByteBuffer()
        for event in decoded {
            if event.isDone {
                if self.streaming { var raw = event.raw; out.writeBuffer(&raw) }
                continue
            }
            if self.events == 0 {
                // Until the first token, events (the role chunk) are held back: a failure before it
                // is retried on another car and the client sees one unbroken stream.
                self.held.append(event)
                guard Aggregate.carriesToken(event) else { continue }
                self.firstEvent()
            }
            for event in self.held.isEmpty ? [event] : self.held {
                self.events += 1
                let now = NIODeadline.now()
                if let last = self.lastEventAt {
                    self.core.metrics.interToken.recordNanoseconds((now - last).nanoseconds)
                }
                self.lastEventAt = now
                if self.streaming {
                    if !self.clientWantsUsage && event.contains("\"usage\"") && Aggregate.isUsageOnly(event.data) {
                        continue
                    }
                    if decoded.count == 1 && self.held.isEmpty {
                        out = event.raw  // the common case: one event per DATA frame, forwarded without a copy
                    } else {
                        var raw = event.raw
                        out.writeBuffer(&raw)
                    }
                } else {
                    self.aggregate.add(event.data)
                }
            }
            self.held.removeAll()
        }
        if self.streaming && out.readableBytes > 0 {
            self.stream.sendData(out, endStream: false)
        }
        if self.stream.isWritable || !self.streaming {
            self.upstream?.consume(data.readableBytes)
        } else {
            self.unconsumed += data.readableBytes
        }
    }

    private func firstEvent() {
        self.firstTokenTimer?.cancel()
        let now = NIODeadline.now()
        self.firstTokenAt = now
        if let dispatch = self.dispatch {
            let observed = (now - self.upstreamStartedAt).nanoseconds
            self.core.metrics.observedCarTTFT.recordNanoseconds(observed)
            self.core.metrics.predictedTTFT.recordNanoseconds(Int64(dispatch.predictedTTFTMilliseconds * 1e6))
            self.core.metrics.predictionRatio.record(
                dispatch.predictedTTFTMilliseconds * 1e6 / Double(max(1, observed)))
        }
        self.core.metrics.ttft.recordNanoseconds((now - self.started).nanoseconds)
        if self.streaming {
            var response = HTTPResponse(status: .ok)
            response.headerFields = self.routeHeaders()
            response.headerFields[.contentType] = "text/event-stream"
            response.headerFields[.cacheControl] = "no-cache"
            self.stream.sendResponse(response, endStream: false)
            self.headersSent = true
        }
    }

    func upstreamDidEnd(_ attempt: Int) {
        guard attempt == self.attempts, !self.finished else { return }
        self.firstTokenTimer?.cancel()
        if self.upstreamStatus != 200 {
            return self.upstreamErrorStatus()
        }
        if self.events == 0 {
            return self.upstream(attempt, didFail: UpstreamFailure(retryable: true, label: "empty_stream"))
        }
        self.finished = true
        self.releaseUpstream(succeeded: true)
        (self.car != nil ? self.core.metrics.routeCar : self.core.metrics.routeCentral).increment()
        self.core.metrics.request(route: self.route, status: 200)
        if self.streaming {
            self.stream.sendEnd(trailers: nil)
        } else {
            let response = self.aggregate.response(chat: self.chat, model: self.model)
            self.stream.sendResponse(
                status: .ok, contentType: "application/json", body: JSON.buffer(response), headers: self.routeHeaders())
        }
        self.audit(status: 200)
    }

    func upstream(_ attempt: Int, didFail failure: UpstreamFailure) {
        guard attempt == self.attempts, !self.finished else { return }
        self.firstTokenTimer?.cancel()
        self.upstream?.cancel()
        self.upstream = nil
        self.releaseUpstream(succeeded: false)
        self.logger.debug(
            "Upstream failed",
            metadata: [
                "fleet.request.id": "\(self.requestID)", "error.type": "\(failure.label)",
                "fleet.attempt": "\(attempt)",
            ])
        if !self.headersSent && self.events == 0 && failure.retryable {
            self.core.metrics.retries.increment()
            return self.tryNextCar()
        }
        // Mid-stream: an SSE error event, then end without [DONE] (DESIGN.md, Contracts).
        self.finished = true
        self.core.metrics.request(route: self.route, status: 502)
        let error = APIError.upstreamFailed("The car serving this stream was lost (\(failure.label)).")
        if self.headersSent {
            self.stream.sendData(SSE.event(JSON.string(error.body)), endStream: true)
        } else {
            self.sendError(error)
        }
        self.audit(status: 502)
    }

    /// The car answered with an error status before any token: the client's fault passes through, the rest retries.
    private func upstreamErrorStatus() {
        let status = self.upstreamStatus
        if (400..<500).contains(status) && status != 408 && status != 429 {
            self.finished = true
            self.releaseUpstream(succeeded: true)
            self.core.metrics.request(route: self.route, status: status)
            self.stream.sendResponse(
                status: .init(code: status), contentType: "application/json", body: self.upstreamErrorBody,
                headers: self.routeHeaders())
            self.audit(status: status)
            return
        }
        self.upstream(self.attempts, didFail: UpstreamFailure(retryable: true, label: "status_\(status / 100)xx"))
    }

    // MARK: Answers

    private func routeHeaders() -> HTTPFields {
        var fields = HTTPFields()
        fields[HTTPField.Name(FleetHeader.requestID)!] = self.requestID
        fields[HTTPField.Name(FleetHeader.zone)!] = self.zone
        if let origin = self.origin { fields[HTTPField.Name(FleetHeader.originRegion)!] = origin.region }
        fields[HTTPField.Name(FleetHeader.attempts)!] = String(self.attempts)
        if let predicted = self.predictedTTFT {
            fields[HTTPField.Name(FleetHeader.predictedTTFT)!] = String(Int(predicted.rounded()))
        }
        if let car = self.car {
            fields[HTTPField.Name(FleetHeader.route)!] = "car"
            fields[HTTPField.Name(FleetHeader.region)!] = car.region
            fields[HTTPField.Name(FleetHeader.vehicle)!] = car.pseudonym
        } else if let endpoint = self.centralEndpoint {
            fields[HTTPField.Name(FleetHeader.route)!] = "central"
            fields[HTTPField.Name(FleetHeader.region)!] = endpoint.region
        }
        return fields
    }

    func fail(_ error: APIError) {
        guard !self.finished else { return }
        self.finished = true
        self.bodyTimer?.cancel()
        self.core.metrics.request(route: self.route, status: error.status)
        self.sendError(error)
        self.audit(status: error.status)
    }

    private func sendError(_ error: APIError) {
        var headers = self.routeHeaders()
        if self.zone.isEmpty { headers[HTTPField.Name(FleetHeader.zone)!] = nil }
        self.stream.sendResponse(
            status: .init(code: error.status), contentType: "application/json", body: JSON.buffer(error.body),
            headers: headers)
    }

    /// One audit line per request: ids, origin, zone, route, pseudonym — never prompt or completion text.
    private func audit(status: Int) {
        self.logger.info(
            "Request served",
            metadata: [
                "fleet.request.id": "\(self.requestID)",
                "fleet.status": "\(status)",
                "fleet.origin.country": "\(self.origin?.country ?? "-")",
                "fleet.origin.region": "\(self.origin?.region ?? "-")",
                "fleet.zone": "\(self.zone)",
                "fleet.route": "\(self.events == 0 ? "-" : self.car != nil ? "car" : "central")",
                "fleet.region": "\(self.car?.region ?? self.centralEndpoint?.region ?? "-")",
                "fleet.vehicle": "\(self.car?.pseudonym ?? "-")",
                "fleet.attempts": "\(self.attempts)",
                "fleet.events": "\(self.events)",
            ])
    }
}

/// Collects streamed chunks into one completion for `stream: false`.
struct Aggregate {
    var id = ""
    var created = 0
    var text = ""
    var finishReason: String?
    var usage: Usage?

    mutating func add(_ data: String) {
        guard let chunk = try? JSON.decode(CompletionChunk.self, from: Array(data.utf8)) else { return }
        if self.id.isEmpty {
            self.id = chunk.id
            self.created = chunk.created
        }
        for choice in chunk.choices {
            self.text += choice.delta?.content ?? choice.text ?? ""
            if let reason = choice.finishReason { self.finishReason = reason }
        }
        if let usage = chunk.usage { self.usage = usage }
    }

    func response(chat: Bool, model: String) -> CompletionResponse {
        let choice = CompletionResponse.Choice(
            index: 0, message: chat ? ChatMessage(role: "assistant", content: self.text) : nil,
            text: chat ? nil : self.text,
            finishReason: self.finishReason ?? "stop")
        return CompletionResponse(
            id: self.id, object: chat ? "chat.completion" : "text_completion", created: self.created, model: model,
            choices: [choice], usage: self.usage ?? Usage(promptTokens: 0, completionTokens: 0))
    }

    /// Whether an event carries generated output — non-empty `content` or `text`, a string
    /// `finish_reason`, usage, or anything that is not a chunk (an error) — by scanning bytes, not
    /// decoding JSON: this runs on the time-to-first-token path.
    static func carriesToken(_ event: SSE.Decoder.Event) -> Bool {
        event.raw.withUnsafeReadableBytes { bytes in
            func nonEmptyString(after key: StaticString) -> Bool {
                key.withUTF8Buffer { key in
                    guard let at = SSE.search(UnsafeRawBufferPointer(key), in: bytes) else { return false }
                    let next = at + key.count
                    return next < bytes.count && bytes[next] != UInt8(ascii: "\"")
                }
            }
            func present(_ key: StaticString) -> Bool {
                key.withUTF8Buffer { SSE.search(UnsafeRawBufferPointer($0), in: bytes) != nil }
            }
            if !present("\"choices\"") { return true }
            return nonEmptyString(after: "\"content\":\"") || nonEmptyString(after: "\"text\":\"")
                || present("\"finish_reason\":\"") || present("\"usage\":{")
        }
    }

    /// Whether an event is the final usage-only chunk (`"choices":[]` with `usage`).
    static func isUsageOnly(_ data: String) -> Bool {
        guard let chunk = try? JSON.decode(CompletionChunk.self, from: Array(data.utf8)) else { return false }
        return chunk.choices.isEmpty && chunk.usage != nil
    }
}
