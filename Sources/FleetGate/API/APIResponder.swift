import CoreMetrics
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Synchronization

/// Routes client requests: the OpenAI API of the gateway.
struct APIResponder: HTTPServerResponder {
    let core: GatewayCore
    /// Each event loop's admission (issue #19): an overloaded loop refuses before reading the body.
    let loads: EventLoopLoads
    /// `http_server_requests_total{http_route=…, http_response_status_code="503"}` of each
    /// completion route, resolved once: an early refusal builds no label and takes no lock.
    private let shedCounters: [Counter]
    /// How many head refusals are logged one by one.
    private let refusalLog: RefusalLogBudget

    init(core: GatewayCore, loads: EventLoopLoads) {
        self.core = core
        self.loads = loads
        self.refusalLog = RefusalLogBudget(now: core.now)
        // By ``ClientAPI/ordinal``: a dictionary keyed by the API hashed its path at every refusal.
        self.shedCounters = ClientAPI.allCases.map {
            core.metrics.requestCounter(route: $0.route, status: Self.overloaded.status)
        }
    }

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        // A browser page on another origin (`auth.corsOrigins`): its preflight is answered here, and
        // its answers carry the CORS fields. Without `auth.corsOrigins` (the default) no field is
        // looked up; the SDKs send no `Origin`, and nothing is wrapped for them.
        let cors = self.core.liveConfiguration.cors
        // HTTP/2 screened the request on its header block (`earlyResponse`), unless CORS is on.
        let screened = connection.httpProtocol != "http/1.1" && !cors.isEnabled
        if cors.isEnabled, let origin = request.headerFields[.origin], cors.allows(origin) {
            if request.method == .options {
                self.core.metrics.request(route: "preflight", status: 200)
                return FixedResponseDelegate(
                    stream: stream, status: .ok, body: ByteBuffer(),
                    headers: cors.preflightFields(
                        origin: origin, requestedHeaders: request.headerFields[.accessControlRequestHeaders]))
            }
            return self.serve(
                CORSStream(stream, fields: cors.responseFields(origin: origin)), request, connection, screened: screened
            )
        }
        return self.serve(stream, request, connection, screened: screened)
    }

    /// - Parameter screened: the request passed the loop's admission on its header block.
    private func serve(
        _ stream: any HTTPStream, _ request: HTTPRequest, _ connection: HTTPConnectionInfo, screened: Bool
    ) -> any HTTPStreamDelegate {
        let path = Self.route(of: request.path)
        if let api = ClientAPI(rawValue: path) {
            guard request.method == .post else {
                return self.answer(stream, error: .methodNotAllowed, route: path, request: request)
            }
            // The key is checked on the head: an unauthenticated body is never buffered (issue #10).
            guard self.core.isAuthorized(request.headerFields[.authorization]) else {
                return self.answer(stream, error: .invalidAPIKey, route: path, now: true, request: request)
            }
            // Its zone saturated (lately found without room, and still without): refused before its
            // body, validation and routing, as routing would refuse it (``GatewayCore/saturatedZone(of:connection:)``);
            // before the loop counts it, so a refusal is not an admission to the shedder.
            if let saturated = self.core.saturatedZone(of: request, connection: connection) {
                self.core.metrics.shedBusyZone()
                self.core.metrics.fleetState.zoneRefused(saturated.zone)
                return self.answer(
                    stream, error: GatewayCore.saturatedZoneError(saturated.zone, retryAfter: saturated.retryAfter),
                    route: path, now: true, request: request, zone: saturated.zone)
            }
            // Shed before anything is read or allocated for the request: refusing must cost far less
            // than serving, or a loop past capacity spends itself on refusals. On HTTP/2 the
            // decision was taken on the header block (`earlyResponse`), and this request passed it.
            let load = self.loads.load(of: stream.eventLoop)
            if let load {
                if screened {
                    load.admitted()
                } else if case .shed(let reason) = load.admit() {
                    self.core.metrics.shed(reason)
                    return self.answer(stream, error: Self.overloaded, route: path, now: true, request: request)
                }
            }
            return CompletionHandler(
                core: self.core, stream: stream, request: request, connection: connection, api: api, load: load)
        }
        switch path {
        case "/v1/models":
            guard request.method == .get else {
                return self.answer(stream, error: .methodNotAllowed, route: path, request: request)
            }
            guard self.core.isAuthorized(request.headerFields[.authorization]) else {
                return self.answer(stream, error: .invalidAPIKey, route: path, request: request)
            }
            var served = self.core.registry.models().union(self.core.central.models())
            // Cluster (#21): what other replicas' cars serve is served here too, by forwarding (helper-107).
            if let cluster = self.core.cluster { served.formUnion(cluster.models(now: self.core.now)) }
            // A key limited to some models sees those only: listing the others led to a 404 on use.
            if let allowed = self.core.keys.allowedModels(request.headerFields[.authorization]) {
                served.formIntersection(allowed)
            }
            let models = ModelList(data: served.sorted().map { .init(id: $0, created: 0, ownedBy: "fleetgate") })
            self.core.metrics.request(route: path, status: 200)
            return FixedResponseDelegate(
                stream: stream, status: .ok, body: JSON.buffer(models), headers: Self.requestIDHeaders(request))
        case _ where path.hasPrefix("/v1/models/"):
            // `client.models.retrieve(id)`: the model object, if a car or central capacity serves it.
            guard request.method == .get else {
                return self.answer(stream, error: .methodNotAllowed, route: "/v1/models/{id}", request: request)
            }
            guard self.core.isAuthorized(request.headerFields[.authorization]) else {
                return self.answer(stream, error: .invalidAPIKey, route: "/v1/models/{id}", request: request)
            }
            let raw = path.dropFirst("/v1/models/".count)
            let id = String(raw).removingPercentEncoding ?? String(raw)
            let allowed = self.core.keys.allowedModels(request.headerFields[.authorization])
            guard self.core.serves(model: id), allowed?.contains(id) ?? true else {
                return self.answer(stream, error: .modelNotFound(id), route: "/v1/models/{id}", request: request)
            }
            self.core.metrics.request(route: "/v1/models/{id}", status: 200)
            let model = ModelList.Model(id: id, created: 0, ownedBy: "fleetgate")
            return FixedResponseDelegate(
                stream: stream, status: .ok, body: JSON.buffer(model), headers: Self.requestIDHeaders(request))
        case _ where path.hasPrefix(ClientAPI.responses.route + "/"):
            // Retrieve, delete, cancel, input items: there is nothing stored to find (docs/responses.md).
            guard self.core.isAuthorized(request.headerFields[.authorization]) else {
                return self.answer(stream, error: .invalidAPIKey, route: "/v1/responses/{id}", request: request)
            }
            return self.answer(stream, error: .responseNotStored, route: "/v1/responses/{id}", request: request)
        default:
            return self.answer(stream, error: .notFound, route: "other", request: request)
        }
    }

    /// The request's path without its query: everything before the first `?`, as ``ClientAPI/init(path:)``
    /// takes it (`?/v1/completions` is the route `""`, not `/v1/completions`). A path without `?` (every
    /// completion request of the benchmarks) is taken as it is: `split` cost ~8.6 k instructions a
    /// request (issue #19).
    static func route(of path: String?) -> String {
        guard let path else { return "/" }
        guard let query = path.utf8.firstIndex(of: UInt8(ascii: "?")) else { return path }
        return String(path[..<query])
    }

    /// HTTP/2: the admission of a completion request, on its header block — before its fields
    /// are converted, its key checked or anything allocated for it (issue #19). A shed request
    /// is answered with a response made once; it costs the two counters and nghttp2's framing.
    /// Unlike HTTP/1.1, a request without a valid key is then answered 503, not 401: the key is
    /// among the fields that are not read. Not while CORS is on (`auth.corsOrigins`): a browser
    /// must read the refusal, whose CORS fields depend on the request's `Origin`, so the request is
    /// screened with its fields, as on HTTP/1.1.
    func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse? {
        guard method == "POST", let api = ClientAPI(path: path), let load = self.loads.load(of: eventLoop),
            !self.core.corsEnabled.load(ordering: .relaxed), case .shed(let reason) = load.screen()
        else { return nil }
        self.core.metrics.shed(reason)
        self.shedCounters[api.ordinal].increment()
        return Self.overloadedResponse
    }

    /// The answer of a shed request, and its body encoded once: a loop past capacity must not
    /// spend a JSON encode on every refusal (it was the largest entry of the shed path).
    private static let overloaded = APIError.overloaded("The gateway is at capacity; retry shortly.")
    private static let overloadedBody = overloaded.jsonBody()
    /// The same answer as a whole HTTP/2 response, made once.
    private static let overloadedResponse = HTTPPrebuiltResponse(
        status: overloaded.status,
        fields: [("content-type", "application/json"), ("retry-after", String(overloaded.retryAfter ?? 1))],
        body: overloadedBody,
        echo: .init(
            name: FleetHeader.requestID,
            accepts: { RequestID.isWellFormed(String(decoding: $0, as: UTF8.self)) },
            generate: { IdentifierRandom.uuidString() }))

    /// `x-request-id`: the client's, when well formed, or a new one — on every answer, as
    /// CompletionHandler's (helper-56: 405s, `/v1/models` and unknown paths had none).
    static func requestIDHeaders(_ request: HTTPRequest) -> HTTPFields {
        var headers = HTTPFields()
        headers.append(.perMessage(.fleetRequestID, RequestID(header: request.headerFields[.fleetRequestID]).value))
        return headers
    }

    /// Answers with `error`, after the request body or, with `now`, at once without reading it.
    /// Its `Request served` line is written now, as a completion request's when it ends: with
    /// `error.type` and the request id the client gets (an operator looking up a 401 finds it). Not
    /// for a loop's refusals (`overloaded`): at twice capacity that would be thousands of lines a
    /// second from a loop already behind; they are counted, and ``ShedReport`` logs their episodes.
    /// - Parameter zone: the zone of a request refused because it is saturated: its line says it, and
    ///   comes from the budget of the zone's refusals after routing (``GatewayCore/busyRefusalLog``),
    ///   not the head refusals' (a saturated zone's thousands a second would crowd out the 401s).
    private func answer(
        _ stream: any HTTPStream, error: APIError, route: String, now: Bool = false, request: HTTPRequest,
        zone: String? = nil
    ) -> any HTTPStreamDelegate {
        self.core.metrics.request(route: route, status: error.status)
        var headers = Self.requestIDHeaders(request)
        if error != Self.overloaded, self.core.logger.logLevel <= .info, let id = headers[.fleetRequestID] {
            let budget = (zone == nil ? self.refusalLog : self.core.busyRefusalLog).take(now: self.core.now)
            if budget.log {
                Self.audit(
                    error, requestID: id, request: request, logger: self.core.logger, unlogged: budget.unlogged,
                    zone: zone ?? "-")
            }
        }
        // Appended: the id's are the only fields yet.
        if let seconds = error.retryAfter { headers.append(HTTPField(name: .retryAfter, value: String(seconds))) }
        return FixedResponseDelegate(
            stream: stream, status: .init(code: error.status),
            body: error == Self.overloaded ? Self.overloadedBody : error.jsonBody(), headers: headers,
            respondNow: now)
    }

    /// A refused request's line: the fields of ``CompletionHandler``'s, with nothing routed, and
    /// `fleet.unlogged` when earlier refusals went without a line (``RefusalLogBudget``).
    static func audit(
        _ error: APIError, requestID: String, request: HTTPRequest, logger base: Logger, unlogged: Int,
        zone: String = "-"
    ) {
        let (trace, incoming) = RequestLogger.span(of: request)
        let fields = CompletionHandler.auditFields(
            requestID: requestID, status: error.status, errorType: error.code, origin: nil, zone: zone, route: "-",
            region: "-", vehicle: "-", counts: (0, 0, 0), unlogged: unlogged)
        RequestLogger(base: base, trace: trace, incoming: incoming).log(
            level: .info, "Request served", sortedFields: fields)
    }
}
