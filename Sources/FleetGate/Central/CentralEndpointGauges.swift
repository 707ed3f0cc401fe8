import CoreMetrics
import NIOCore
import Synchronization

/// Central endpoints as gauges, set when `/metrics` is scraped: what an operator asks first when
/// a zone refuses requests — is central up, busy or out?
///
/// - `fleet_central_endpoint_state{endpoint,region,zone,state}`: 1 for the endpoint's state, 0 for
///   the others. `state` is one of ``states``: `up` (in rotation), `busy` (it answered 429 or 503
///   and is left alone for the `Retry-After` it asked), `out` (failed three times in a row, or has
///   not listed its models yet: probed every second until it does).
/// - `fleet_central_in_flight{endpoint,region,zone}`: streams in flight on it (its bound is
///   `central.endpoints[].maxConcurrent`).
///
/// `endpoint` is the configured base URL without user information. Every configured endpoint's
/// series exist from the first scrape.
final class CentralEndpointGauges: Sendable {
    /// The values of the `state` label.
    static let states = ["up", "busy", "out"]

    private let factory: any MetricsFactory
    private let gauges = Mutex<[String: Gauge]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// The state label of an endpoint at `now`.
    static func state(of endpoint: CentralDirectory.Endpoint, at now: NIODeadline) -> String {
        if endpoint.isOut { return "out" }
        return endpoint.isBusy(at: now) ? "busy" : "up"
    }

    /// Sets the gauges from the endpoints as they are now.
    func publish(_ endpoints: [CentralDirectory.Endpoint], now: NIODeadline = .now()) {
        for endpoint in endpoints {
            let current = Self.state(of: endpoint, at: now)
            let base = [
                ("endpoint", CentralDirectory.redacted(endpoint.baseURL)), ("region", endpoint.region),
                ("zone", endpoint.zone),
            ]
            for state in Self.states {
                self.gauge("fleet_central_endpoint_state", base + [("state", state)]).record(state == current ? 1 : 0)
            }
            self.gauge("fleet_central_in_flight", base).record(endpoint.inFlight)
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        let key = label + dimensions.map { "\u{0}" + $0.1 }.joined()
        return self.gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: dimensions, factory: self.factory)
            gauges[key] = gauge
            return gauge
        }
    }
}
