import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import NIOCore
import Prometheus

/// The admin port (loopback by default): health, readiness, Prometheus metrics, the fleet.
///
/// - `GET /healthz`: the process runs.
/// - `GET /readyz`: 200 once every listener is bound, 503 before and while shutting down.
/// - `GET /metrics`: Prometheus text format.
/// - `GET /admin/cars`: connected cars by pseudonym (never the raw vehicle id).
/// - `GET /admin/regions`: the live region map, its version and the database in use.
/// - `GET /admin/config`: the running configuration, secrets withheld (``ConfigView``).
/// - `POST /admin/reload`: reload the configuration (as SIGHUP does: region map, GeoIP database, TLS
///   certificates, API keys, limits, log level); 200 with what changed, or 422 with every error
///   while the running configuration stays.
/// - `POST /admin/regions/reload`: the same reload, answered with the live region map.
/// - `POST /admin/keys/reload`: re-read the application key file; 200 with the key count, or 422.
///
/// ``AdminGuard`` runs first: probes are read-only; the rest checks Host, Origin, the bearer
/// token and, for a state change, POST with a JSON content type.
struct AdminResponder: HTTPServerResponder {
    let core: GatewayCore
    let prometheus: PrometheusCollectorRegistry
    let readiness: Readiness
    let reloader: GatewayReloader
    let guardrail: AdminGuard
    /// #17: the dashboard's sessions; a live session cookie stands in for the bearer token on GETs.
    let dashboard: DashboardSessions
    /// Serve only the probes and metrics (the listener bound to a pod address).
    var probesOnly = false

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        let path = request.path ?? "/"
        // #17: the dashboard's login carries the token in its query, and its page's GETs a session cookie.
        let dashboardSession =
            request.method == .get
            && (path.hasPrefix("/dashboard/login?")
                || self.dashboard.isValid(cookieHeader: request.headerFields[.cookie]))
        if let refusal = self.guardrail.check(request, path: path, session: dashboardSession) {
            return Self.refuse(stream, refusal)
        }
        if self.probesOnly && !AdminGuard.probes.contains(path) {
            return FixedResponseDelegate(stream: stream, status: .notFound, body: APIError.notFound.jsonBody())
        }
        // A known path asked with the other method is a 405 naming the right one, not a 404.
        if let allowed = Self.methods[path], request.method != allowed, !(allowed == .get && request.method == .head) {
            let body = APIErrorBody(
                message: "\(path) takes \(allowed.rawValue).", type: "invalid_request_error", code: "admin_refused")
            var allow = HTTPFields()
            allow[.allow] = allowed == .get ? "GET, HEAD" : "POST"  // RFC 9110 §15.5.6
            return FixedResponseDelegate(
                stream: stream, status: .methodNotAllowed, body: JSON.buffer(body), headers: allow)
        }
        switch path {
        case "/healthz":
            return FixedResponseDelegate(stream: stream, status: .ok, body: ByteBuffer(string: "{\"status\":\"ok\"}"))
        case "/readyz":
            let ready = self.readiness.isReady
            return FixedResponseDelegate(
                stream: stream, status: ready ? .ok : .serviceUnavailable,
                body: ByteBuffer(
                    string: "{\"ready\":\(ready),\"cars\":\(self.core.tunnels.count)"
                        + (self.core.cluster.map { ",\"cluster\":" + $0.readyDetail } ?? "") + "}"))
        case "/metrics":
            return FixedResponseDelegate(
                stream: stream, status: .ok, body: ByteBuffer(bytes: self.metricsBody()),
                contentType: "text/plain; version=0.0.4")
        case "/admin/config":
            let view = ConfigView(self.core.configuration, regionsVersion: self.core.geo.current.map.version)
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(view))
        case "/admin/cluster":
            // One replica (no cluster.etcdEndpoints): nothing to show but that.
            guard let cluster = self.core.cluster else {
                return FixedResponseDelegate(
                    stream: stream, status: .ok, body: ByteBuffer(string: "{\"cluster\":false}"))
            }
            return FixedResponseDelegate(
                stream: stream, status: .ok, body: JSON.buffer(cluster.statusView(now: self.core.now)))
        case "/admin/regions":
            return FixedResponseDelegate(
                stream: stream, status: .ok, body: JSON.buffer(RegionsView(self.core.geo.current)))
        case "/admin/reload", "/admin/regions/reload":
            // Off the event loop: a reload reads and checks files; requests that arrive while one runs
            // share the next (OffLoopResponseDelegate, CoalescedJob).
            let (reloader, geo) = (self.reloader, self.core.geo)
            return OffLoopResponseDelegate(stream: stream) { eventLoop in
                // helper-70: /admin/regions/reload applied the whole configuration, which docs/regions.md
                // says it does not; it re-reads the map and the GeoIP database alone.
                reloader.reload(on: eventLoop, regionsOnly: path == "/admin/regions/reload").map { result in
                    switch result {
                    case .success(let report):
                        guard path == "/admin/reload" else {
                            var view = RegionsView(geo.current)
                            view.warnings = report.warnings.isEmpty ? nil : report.warnings
                            view.changed = report.regionsChanged
                            return (.ok, JSON.buffer(view))
                        }
                        return (.ok, JSON.buffer(report))
                    case .failure(let error):
                        let body = APIErrorBody(
                            message: error.message, type: "invalid_request_error", code: "invalid_configuration")
                        return (.unprocessableContent, JSON.buffer(body))
                    }
                }
            }
        case "/admin/keys/reload":
            let reloader = self.reloader
            return OffLoopResponseDelegate(stream: stream) { eventLoop in
                reloader.reloadKeys(on: eventLoop).map { result in
                    switch result {
                    case .success(let count):
                        return (.ok, ByteBuffer(string: "{\"keys\":\(count)}"))
                    case .failure(let error):
                        let body = APIErrorBody(
                            message: error.description, type: "invalid_request_error", code: "invalid_key_file")
                        return (.unprocessableContent, JSON.buffer(body))
                    }
                }
            }
        case _ where path == "/dashboard" || path.hasPrefix("/dashboard/"):
            return self.dashboard(stream, request: request, path: path)
        case "/admin/cars":
            let now = self.core.now
            let cars = self.core.registry.all().map { car in
                CarView(
                    vehicle: car.descriptor.pseudonym, region: car.descriptor.region, zone: car.descriptor.zone,
                    hardware: car.descriptor.hardware.rawValue, slots: car.descriptor.slots, inFlight: car.inFlight,
                    pluggedIn: car.state.pluggedIn, chargePercent: car.state.chargePercent,
                    rttMs: car.rttMilliseconds, draining: car.draining, state: FleetStateMetrics.state(of: car),
                    failuresInARow: car.consecutiveFailures,
                    backedOffSeconds: car.backoffUntil > now ? ((car.backoffUntil - now) * 1000).rounded() / 1000 : nil,
                    hedgeRacesLostInARow: car.racesLost,
                    passedOverSeconds: car.passedOverUntil > now
                        ? ((car.passedOverUntil - now) * 1000).rounded() / 1000 : nil,
                    models: car.descriptor.models.map { offer in
                        let learned = car.learned[offer.id]
                        return ModelView(
                            id: offer.id, decodeTps: offer.decodeTokensPerSecond,
                            prefillTps: offer.prefillTokensPerSecond,
                            learnedPrefillSlowdown: learned?.prefillSlowdown,
                            learnedDecodeSlowdown: learned?.decodeSlowdown,
                            observations: learned?.decodeObservations ?? 0, contextTokens: offer.contextTokens)
                    })
            }
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(cars))
        default:
            return FixedResponseDelegate(stream: stream, status: .notFound, body: APIError.notFound.jsonBody())
        }
    }

    /// The method of each admin path (the probes and the dashboard check their own).
    static let methods: [String: HTTPRequest.Method] = [
        "/admin/config": .get, "/admin/regions": .get, "/admin/cars": .get, "/admin/cluster": .get,
        "/admin/reload": .post, "/admin/regions/reload": .post, "/admin/keys/reload": .post,
    ]

    static func refuse(_ stream: any HTTPStream, _ refusal: AdminGuard.Refusal) -> any HTTPStreamDelegate {
        let (status, message): (HTTPResponse.Status, String) =
            switch refusal {
            case .methodNotAllowed: (.methodNotAllowed, "Method not allowed on this path.")
            case .forbiddenHost: (.forbidden, "Host not allowed on the admin port.")
            case .forbiddenOrigin: (.forbidden, "Cross-origin requests are not allowed on the admin port.")
            case .unauthorized:
                (.unauthorized, "Missing or wrong admin token. Send 'Authorization: Bearer <token>'.")
            case .unsupportedMediaType: (.unsupportedMediaType, "A state change needs POST with application/json.")
            }
        let body = APIErrorBody(message: message, type: "invalid_request_error", code: "admin_refused")
        return FixedResponseDelegate(stream: stream, status: status, body: JSON.buffer(body))
    }

    /// The live map as JSON.
    struct RegionsView: Encodable {
        struct ZoneView: Encodable {
            var residency: String
            var countries: [String]
        }
        struct RegionView: Encodable {
            var zone: String
            var countries: [String]
        }
        struct DatabaseView: Encodable {
            var path, type: String
            var built: Int64
        }
        var version: String
        var loadedAt: String
        var database: DatabaseView?
        var zones: [String: ZoneView]
        var regions: [String: RegionView]
        var origins: [String: String]
        /// A reload's warnings (``GatewayReloader/Report/warnings``); absent otherwise.
        var warnings: [String]?
        /// Whether a reload changed the map (``GatewayReloader/Report/regionsChanged``); absent otherwise.
        var changed: Bool?

        init(_ snapshot: GeoState.Snapshot) {
            let map = snapshot.map
            self.version = map.version
            self.loadedAt = ISO8601DateFormatter().string(from: snapshot.loadedAt)
            self.database = snapshot.database.map {
                DatabaseView(path: $0.path, type: $0.databaseType, built: $0.buildEpoch)
            }
            self.zones = map.zones.mapValues {
                ZoneView(residency: $0.residency.rawValue, countries: $0.countries.sorted())
            }
            self.regions = map.regions.mapValues { RegionView(zone: $0.zone, countries: $0.countries.sorted()) }
            self.origins = [
                "private": map.privateRegion, "unknown": map.unknownRegion, "noDatabase": map.noDatabaseRegion,
            ]
        }
    }

    struct CarView: Encodable {
        var vehicle, region, zone, hardware: String
        var slots, inFlight: Int
        var pluggedIn: Bool
        var chargePercent: Int
        var rttMs: Double?
        var draining: Bool
        /// As `fleet_cars`' state label: serving, charging, unplugged, departing, draining.
        var state: String
        /// Failures in a row: while more than 0, the car holds one job at a time until one is served.
        var failuresInARow: Int
        /// How long it is still given no work after a failure or a busy answer; absent when it is not.
        var backedOffSeconds: Double?
        /// Hedge races lost in a row: attempts a hedge beat to the first token, before any of their own.
        var hedgeRacesLostInARow: Int
        /// How long it is still passed over after its last lost race while other capacity can take a
        /// request (a soft limit: with nothing else, it serves); absent when it is not.
        var passedOverSeconds: Double?
        var models: [ModelView]
    }

    /// A model as the car reports it (rates it measured, or its class's) and what the gateway learned.
    struct ModelView: Encodable {
        var id: String
        var decodeTps, prefillTps: Double
        var learnedPrefillSlowdown, learnedDecodeSlowdown: Double?
        var observations: Int
        /// The model's context window the car said (nil: not said).
        var contextTokens: Int?
    }
}
