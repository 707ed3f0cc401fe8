public import CoreMetrics
import FleetProtocol
public import FleetScheduler
import Synchronization

import struct Foundation.Date

/// The gateway's metrics, created once from an injected factory (tests pass their own).
///
/// Names follow OpenTelemetry where one exists; our own start with `fleet_`. No dimension holds
/// an unbounded value (no vehicle ids, request ids, addresses or raw paths).
public final class GatewayMetrics: Sendable {
    let factory: any MetricsFactory
    /// `http_server_requests_total` by route and status, keyed without building a string per request.
    private let requestCounters = Mutex<[RequestKey: Counter]>([:])
    private struct RequestKey: Hashable {
        var route: String
        var status: Int
    }
    private let carsByRegion = Mutex<[String: Gauge]>([:])
    /// `fleet_regions_info`: the region map in use (``regionMapInstalled(version:)``).
    private let regionsInfo = Mutex<Gauge?>(nil)
    private let keyCounters = Mutex<[String: Counter]>([:])
    /// Time to first token as the client sees it.
    public let ttft: Timer
    /// Time between tokens relayed (``SecondsHistogram``: recorded per token).
    public let interToken: SecondsHistogram

    /// Metric names the factory is configured for.
    public enum Name {
        /// ``interToken``'s, a `Double` histogram given ``SecondsHistogram/buckets``.
        public static let interToken = "fleet_inter_token_seconds"
        /// ``predictionRatio``'s, a histogram given ``ratioBuckets``.
        public static let predictionRatio = "fleet_ttft_predicted_over_observed"
    }
    /// Buckets around 1 (exact) for ``predictionRatio``: the default value buckets began at 5, so every
    /// ratio fell into the first (helper-70).
    public static let ratioBuckets: [Double] = [0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4]
    /// Requests served by route (car/central, and replica: forwarded to another replica, issue #21).
    public let routeCar: Counter
    public let routeCentral: Counter
    public let routeReplica: Counter
    /// Answers whose upstream-reported usage passed the request's bounds and was clamped, by route.
    private let usageClamps: [Route: Counter]

    /// The route a served request took, as the `route` label of the request metrics.
    public enum Route: String, Sendable {
        case car, central, replica
        /// The label value.
        public var label: String { self.rawValue }
    }
    /// Upstream attempts that failed before the first token and were retried.
    public let retries: Counter
    /// Cars whose tunnel peer address is in another zone than their credential's region.
    public let carLocationMismatch: Counter
    /// A car registered while its vehicle id's earlier tunnel was still up, which is then closed.
    public let carTakeovers: Counter
    /// Cars whose tunnel was closed after two missed PINGs (a car, not an attempt: each attempt it
    /// carried is counted in `fleet_attempt_failures_total` by how it failed; helper-104).
    public let carsDead: Counter
    /// The scheduler's predicted and the observed time to first token of each car job, and their ratio.
    public let predictedTTFT: Timer
    public let observedCarTTFT: Timer
    public let predictionRatio: Recorder
    /// Time spent deciding where a request goes.
    public let decisionTime: Timer
    /// Decisions by the route ranked first, for the gateway's one policy: created once, so a
    /// request builds no label and takes no lock to count its decision.
    private let decisionToCar: Counter
    private let decisionToCentral: Counter
    private let decisionToNone: Counter
    /// Hedged attempts started, and hedges whose attempt won the race.
    public let hedgesStarted: Counter
    /// `fleet_requests_shed_total{reason="lag|pass|concurrency|in_flight|zone_busy"}`: requests refused
    /// with 503 `server_overloaded` by an event loop's ``LoadShedder`` (issue #19), or because
    /// everything in their zone that serves their model was busy (``Dispatcher``).
    private let shedLag: Counter
    private let shedConcurrency: Counter
    private let shedPass: Counter
    private let shedInFlight: Counter
    private let shedZoneBusy: Counter
    public let hedgesWon: Counter
    /// Requests that ended with their answer whole (counted 200) whose client left while the gateway still
    /// held part of it (``Dispatcher/holdForSlowClient(_:)``): the audit line's 200 is the gateway's side;
    /// this says the client did not get all of it. A lower bound: bytes in the kernel's socket buffer, or a
    /// hold released when the client read below the low-water mark, are not seen.
    public let heldAnswersLost: Counter
    /// Lost streams' continuations that waited for a busy zone (``CapacityWait``), by how the wait
    /// ended: a slot found (`served`), the limit reached (`gave_up`), nothing left in the zone for the
    /// model (`emptied`), the request gone (`gone`: its client left, or its other attempt won).
    private let capacityWaitServed: Counter
    private let capacityWaitGaveUp: Counter
    private let capacityWaitEmptied: Counter
    private let capacityWaitGone: Counter
    /// Mid-stream continuations by why they were opened (failover, departure), and `stream: false`
    /// answers started again from nothing (restart).
    private let failovers: Counter
    private let departures: Counter
    private let restarts: Counter
    /// Failed attempts by kind (a bounded label: `car_reset`, `inter_token_timeout`, …).
    private let attemptFailures = Mutex<[String: Counter]>([:])
    /// Region map / database reloads by result.
    public let reloadOK: Counter
    public let reloadFailed: Counter
    /// 1 when the last reload (or the start) succeeded, 0 after a refused one: a refused reload leaves
    /// the old configuration running, which nothing else shows (helper-70). Prometheus's own
    /// `prometheus_config_last_reload_successful` is the model.
    public let lastReloadSuccessful: Gauge
    /// When the running configuration was loaded: the start, or the last successful reload (Unix seconds).
    public let lastReloadSuccessTimestamp: Gauge
    /// Keys whose file value differs from the running one since the last full reload, which keeps the
    /// running value until a restart (helper-73: only a log line said so).
    public let restartPending: Gauge
    /// The OpenTelemetry GenAI metrics (time to first token, time per output token, duration, tokens).
    public let genAI: GenAIMetrics
    /// The fleet's state at scrape time and refusals by zone.
    public let fleetState: FleetStateMetrics

    /// The region map now in use, as the `version` label of a constant 1 (`fleet_regions_info`), so a
    /// dashboard shows which map runs (helper-101: only the admin API did); the previous map's series
    /// is removed.
    func regionMapInstalled(version: String) {
        self.regionsInfo.withLock { gauge in
            gauge?.destroy()
            gauge = Gauge(label: "fleet_regions_info", dimensions: [("version", version)], factory: self.factory)
            gauge?.record(1)
        }
    }

    public init(factory: any MetricsFactory, policy: SchedulingPolicy = .predictive) {
        self.factory = factory
        func decisions(_ route: String) -> Counter {
            Counter(
                label: "fleet_decisions_total", dimensions: [("policy", policy.rawValue), ("route", route)],
                factory: factory)
        }
        self.decisionToCar = decisions("car")
        self.decisionToCentral = decisions("central")
        self.decisionToNone = decisions("none")
        self.ttft = Timer(
            label: "fleet_time_to_first_token_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory
        )
        self.interToken = SecondsHistogram(label: Name.interToken, factory: factory)
        self.routeCar = Counter(label: "fleet_routed_total", dimensions: [("route", "car")], factory: factory)
        self.routeCentral = Counter(label: "fleet_routed_total", dimensions: [("route", "central")], factory: factory)
        self.routeReplica = Counter(label: "fleet_routed_total", dimensions: [("route", "replica")], factory: factory)
        self.usageClamps = Dictionary(
            uniqueKeysWithValues: [Route.car, .central, .replica].map {
                ($0, Counter(label: "fleet_usage_clamped_total", dimensions: [("route", $0.label)], factory: factory))
            })
        self.retries = Counter(label: "fleet_upstream_retries_total", dimensions: [], factory: factory)
        self.carLocationMismatch = Counter(label: "fleet_car_location_mismatch_total", dimensions: [], factory: factory)
        self.carTakeovers = Counter(label: "fleet_car_takeovers_total", dimensions: [], factory: factory)
        self.carsDead = Counter(label: "fleet_cars_dead_total", dimensions: [], factory: factory)
        self.predictedTTFT = Timer(
            label: "fleet_predicted_ttft_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        self.observedCarTTFT = Timer(
            label: "fleet_car_ttft_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        self.predictionRatio = Recorder(
            label: Name.predictionRatio, dimensions: [], aggregate: true, factory: factory)
        self.decisionTime = Timer(
            label: "fleet_decision_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        self.shedLag = Counter(label: "fleet_requests_shed_total", dimensions: [("reason", "lag")], factory: factory)
        self.shedInFlight = Counter(
            label: "fleet_requests_shed_total", dimensions: [("reason", "in_flight")], factory: factory)
        self.shedConcurrency = Counter(
            label: "fleet_requests_shed_total", dimensions: [("reason", "concurrency")], factory: factory)
        self.shedPass = Counter(label: "fleet_requests_shed_total", dimensions: [("reason", "pass")], factory: factory)
        self.shedZoneBusy = Counter(
            label: "fleet_requests_shed_total", dimensions: [("reason", "zone_busy")], factory: factory)
        self.hedgesStarted = Counter(label: "fleet_hedges_total", dimensions: [("result", "started")], factory: factory)
        self.hedgesWon = Counter(label: "fleet_hedges_total", dimensions: [("result", "won")], factory: factory)
        self.heldAnswersLost = Counter(label: "fleet_held_answers_lost_total", dimensions: [], factory: factory)
        self.capacityWaitServed = Counter(
            label: "fleet_capacity_waits_total", dimensions: [("result", "served")], factory: factory)
        self.capacityWaitGaveUp = Counter(
            label: "fleet_capacity_waits_total", dimensions: [("result", "gave_up")], factory: factory)
        self.capacityWaitEmptied = Counter(
            label: "fleet_capacity_waits_total", dimensions: [("result", "emptied")], factory: factory)
        self.capacityWaitGone = Counter(
            label: "fleet_capacity_waits_total", dimensions: [("result", "gone")], factory: factory)
        self.failovers = Counter(
            label: "fleet_migrations_total", dimensions: [("reason", "failover")], factory: factory)
        self.departures = Counter(
            label: "fleet_migrations_total", dimensions: [("reason", "departure")], factory: factory)
        self.restarts = Counter(
            label: "fleet_migrations_total", dimensions: [("reason", "restart")], factory: factory)
        self.reloadOK = Counter(label: "fleet_regions_reloads_total", dimensions: [("result", "ok")], factory: factory)
        self.reloadFailed = Counter(
            label: "fleet_regions_reloads_total", dimensions: [("result", "error")], factory: factory)
        self.lastReloadSuccessful = Gauge(label: "fleet_config_last_reload_successful", factory: factory)
        self.lastReloadSuccessTimestamp = Gauge(
            label: "fleet_config_last_reload_success_timestamp_seconds", factory: factory)
        self.restartPending = Gauge(label: "fleet_config_restart_pending", factory: factory)
        self.restartPending.record(0)
        // The running version, as a label on a constant 1 (the Prometheus `_build_info` convention).
        Gauge(label: "fleet_build_info", dimensions: [("version", FleetVersion.current)], factory: factory).record(1)
        self.genAI = GenAIMetrics(factory: factory)
        self.fleetState = FleetStateMetrics(factory: factory)
        // #17: registered at 0 so dashboards and alerts find the families before the first request.
        for kind in ["first_token_timeout", "inter_token_timeout", "total_timeout", "status_5xx"] {
            self.registerAttemptFailure(label: kind)
        }
        for route in ["/v1/chat/completions", "/v1/completions"] { self.registerRequest(route: route, status: 200) }
        self.reloaded(successfully: true)
    }

    /// Records a reload's outcome (and the start's, as a success).
    func reloaded(successfully: Bool) {
        self.lastReloadSuccessful.record(successfully ? 1 : 0)
        if successfully { self.lastReloadSuccessTimestamp.record(Date().timeIntervalSince1970) }
    }

    /// Counts a served request by its route.
    func routed(_ route: Route) {
        switch route {
        case .car: self.routeCar.increment()
        case .central: self.routeCentral.increment()
        case .replica: self.routeReplica.increment()
        }
    }

    /// Counts an answer whose reported usage was clamped (``SSERelay/implausibleUsage``).
    func usageClamped(_ route: Route) { self.usageClamps[route]?.increment() }

    /// Counts how a lost stream's wait for a slot ended.
    func capacityWaitEnded(_ end: Dispatcher.WaitEnd) {
        switch end {
        case .served: self.capacityWaitServed.increment()
        case .gaveUp: self.capacityWaitGaveUp.increment()
        case .emptied: self.capacityWaitEmptied.increment()
        case .gone: self.capacityWaitGone.increment()
        }
    }

    /// Counts a mid-stream continuation.
    func failover(reason: DispatchStateMachine.OpenReason) {
        switch reason {
        case .departure: self.departures.increment()
        case .restart: self.restarts.increment()
        default: self.failovers.increment()
        }
    }

    /// Counts a failed attempt by its bounded label.
    func attemptFailed(label: String) {
        self.registerAttemptFailure(label: label).increment()
    }

    @discardableResult
    private func registerAttemptFailure(label: String) -> Counter {
        self.attemptFailures.withLock { counters in
            if let c = counters[label] { return c }
            let c = Counter(label: "fleet_attempt_failures_total", dimensions: [("kind", label)], factory: self.factory)
            counters[label] = c
            return c
        }
    }

    /// One request shed by an overloaded event loop (`lag`, `pass`, `concurrency`, `in_flight`).
    func shed(_ reason: LoadShedder.Reason) {
        switch reason {
        case .lag: self.shedLag.increment()
        case .concurrency: self.shedConcurrency.increment()
        case .pass: self.shedPass.increment()
        case .inFlight: self.shedInFlight.increment()
        }
    }

    /// One request refused because everything in its zone was busy (`zone_busy`).
    func shedBusyZone() {
        self.shedZoneBusy.increment()
    }

    /// Counts a finished request by route template and status.
    public func request(route: String, status: Int) {
        self.registerRequest(route: route, status: status).increment()
    }

    /// The counter ``request(route:status:)`` increments, to keep where a request is counted
    /// often (issue #19: the early refusal).
    func requestCounter(route: String, status: Int) -> Counter {
        self.registerRequest(route: route, status: status)
    }

    @discardableResult
    private func registerRequest(route: String, status: Int) -> Counter {
        let key = RequestKey(route: route, status: status)
        return self.requestCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = Counter(
                label: "http_server_requests_total",
                dimensions: [("http_route", route), ("http_response_status_code", String(status))],
                factory: self.factory)
            counters[key] = c
            return c
        }
    }

    /// Counts a scheduling decision by the route it ranked first (`car`, `central`, or `none`).
    public func decision(firstChoice: Choice?) {
        switch firstChoice?.route {
        case .car: self.decisionToCar.increment()
        case .central: self.decisionToCentral.increment()
        case nil: self.decisionToNone.increment()
        }
    }

    /// Counts a request of an application key by result (`admitted`, `model_not_allowed`, or the
    /// limit that refused it). Key names come from the key file, so the label set is bounded.
    public func keyRequest(name: String, result: String) {
        self.keyCounter("fleet_key_requests_total", [("key", name), ("result", result)]).increment()
    }

    /// Counts the prompt and completion tokens an application key used.
    public func keyTokens(name: String, tokens: Int) {
        self.keyCounter("fleet_key_tokens_total", [("key", name)]).increment(by: Int64(max(0, tokens)))
    }

    private func keyCounter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.1)" }.joined()
        return self.keyCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = Counter(label: label, dimensions: dimensions, factory: self.factory)
            counters[key] = c
            return c
        }
    }

    /// Sets the number of connected cars in a region.
    public func carsConnected(region: String, count: Int) {
        let gauge = self.carsByRegion.withLock { gauges in
            if let g = gauges[region] { return g }
            let g = Gauge(label: "fleet_cars_connected", dimensions: [("region", region)], factory: self.factory)
            gauges[region] = g
            return g
        }
        gauge.record(count)
    }
}
