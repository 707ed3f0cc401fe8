public import CoreMetrics
import FleetProtocol
public import FleetScheduler
import Foundation
import Synchronization

/// The fleet's state as gauges, set when `/metrics` is scraped, and refusals by privacy zone.
///
/// - `fleet_cars{region,zone,state,plugged}`: connected cars whose primary tunnel is here (a region lies in one zone), rendered at
///   each scrape by ``FleetCarsExposition``. `state` is one of ``states``: `draining` (told to leave),
///   `departing` (announced it drives off), `charging` (plugged in, charge below its owner's floor),
///   `unplugged` (its owner serves only while plugged in), `serving` (eligible).
/// - `fleet_active_streams`: completion requests in flight (the HPA's metric).
/// - `fleet_zone_refusals_total{zone}`: requests refused for their zone's capacity (`no_capacity_in_zone`,
///   or `server_overloaded` when it is all busy).
/// - `fleet_zone_spills_total{from,to}`: requests of a `preferred` zone without capacity for their model
///   served in another zone (docs/regions.md).
/// - `fleet_geoip_database_build_timestamp_seconds`: when the loaded GeoIP database was built.
/// - `fleet_tls_certificate_expiry_timestamp_seconds{listener}`: the leaf certificate's notAfter.
/// - `fleet_buffered_bytes{kind}`: request bodies (`request_body`) and answers held for slow clients
///   (`answer`) at once, against `limits.maxBufferedBodyBytes` and `limits.maxBufferedAnswerBytes`.
/// - `fleet_car_credentials_expiring`: connected cars whose credential (vehicle certificate or token)
///   expires within ``expiringWindow``: their renewal is not happening.
/// - central endpoints' state and load: ``CentralEndpointGauges``.
///
/// Every zone's refusal counter is registered (at 0) for each region map loaded, so dashboards and
/// alerts see the series before the first refusal.
public final class FleetStateMetrics: Sendable {
    /// The values of the `state` label.
    public static let states = ["serving", "charging", "unplugged", "departing", "draining"]

    private let factory: any MetricsFactory
    private let refusals = Mutex<[String: Counter]>([:])
    private let spills = Mutex<[String: Counter]>([:])
    private let certificates = Mutex<[String: Gauge]>([:])
    /// Completion requests in flight.
    public let activeStreams: Gauge
    /// Request-body bytes and answer bytes held now (`kind`: `request_body`, `answer`).
    let bufferedRequestBodies: Gauge
    let bufferedAnswers: Gauge
    /// Build time of the GeoIP database in use (Unix seconds; 0 without one).
    public let geoipBuilt: Gauge
    /// Connected cars whose credential expires within ``expiringWindow``.
    public let credentialsExpiring: Gauge
    /// 48 h: a 7-day certificate renewed daily never comes this close.
    public static let expiringWindow = 48.0 * 3_600
    /// Central endpoints' state and streams in flight.
    let central: CentralEndpointGauges

    init(factory: any MetricsFactory) {
        self.factory = factory
        self.activeStreams = Gauge(label: "fleet_active_streams", dimensions: [], factory: factory)
        self.bufferedRequestBodies = Gauge(
            label: "fleet_buffered_bytes", dimensions: [("kind", "request_body")], factory: factory)
        self.bufferedAnswers = Gauge(label: "fleet_buffered_bytes", dimensions: [("kind", "answer")], factory: factory)
        self.geoipBuilt = Gauge(
            label: "fleet_geoip_database_build_timestamp_seconds", dimensions: [], factory: factory)
        self.credentialsExpiring = Gauge(label: "fleet_car_credentials_expiring", dimensions: [], factory: factory)
        self.central = CentralEndpointGauges(factory: factory)
        for listener in ["tls", "tunnel"] { _ = self.certificate(listener) }
    }

    /// The state label of one car.
    public static func state(of car: CarSnapshot) -> String {
        if car.draining { return "draining" }
        if car.state.departingInSeconds != nil { return "departing" }
        if car.state.pluggedIn && car.state.chargePercent < car.descriptor.policy.minChargePercent {
            return "charging"
        }
        if !car.state.pluggedIn && car.descriptor.policy.onlyWhilePlugged { return "unplugged" }
        return "serving"
    }

    private func refusalCounter(zone: String) -> Counter {
        self.refusals.withLock { counters in
            if let c = counters[zone] { return c }
            let c = Counter(label: "fleet_zone_refusals_total", dimensions: [("zone", zone)], factory: self.factory)
            counters[zone] = c
            return c
        }
    }

    private func certificate(_ listener: String) -> Gauge {
        self.certificates.withLock { gauges in
            if let g = gauges[listener] { return g }
            let g = Gauge(
                label: "fleet_tls_certificate_expiry_timestamp_seconds", dimensions: [("listener", listener)],
                factory: self.factory)
            gauges[listener] = g
            return g
        }
    }

    /// Registers every zone's refusal counter (at 0) for a region map just loaded.
    func register(zones: some Sequence<String>) {
        for zone in zones { _ = self.refusalCounter(zone: zone) }
    }

    /// Counts a request of zone `from` served in zone `to` (zones come from the region maps loaded).
    func zoneSpilled(from: String, to: String) {
        let counter = self.spills.withLock { counters in
            let key = from + "\u{0}" + to
            if let c = counters[key] { return c }
            let c = Counter(
                label: "fleet_zone_spills_total", dimensions: [("from", from), ("to", to)], factory: self.factory)
            counters[key] = c
            return c
        }
        counter.increment()
    }

    /// Counts a request refused because its zone had no capacity.
    func zoneRefused(_ zone: String) {
        // A zone the map no longer has still counts (bounded by the maps loaded since start).
        self.refusalCounter(zone: zone).increment()
    }

    /// Sets the gauges from the state at this moment (called on every scrape) and returns the
    /// `fleet_cars` family to append to the registry's output.
    func publish(
        cars: [CarSnapshot], regions: [String: String], inFlight: Int, geoipBuildEpoch: Int64?,
        certificateExpiry: [String: Int64], credentialsExpiring: Int = 0, buffered: (requestBodies: Int, answers: Int)
    ) -> FleetCarsExposition {
        self.bufferedRequestBodies.record(buffered.requestBodies)
        self.bufferedAnswers.record(buffered.answers)
        self.credentialsExpiring.record(credentialsExpiring)
        self.activeStreams.record(inFlight)
        self.geoipBuilt.record(geoipBuildEpoch ?? 0)
        for (listener, notAfter) in certificateExpiry { self.certificate(listener).record(notAfter) }
        // A car with tunnels to two replicas is counted where its primary tunnel is, as the capacity
        // digests count it, so a sum over replicas counts it once (helper-109: the dashboard showed
        // twice the fleet); `fleet_cars_connected` counts tunnels.
        return FleetCarsExposition(
            cars: cars.lazy.filter(\.descriptor.primary).map {
                .init(
                    region: $0.descriptor.region, zone: $0.descriptor.zone, state: Self.state(of: $0),
                    plugged: $0.state.pluggedIn)
            },
            regions: regions)
    }
}
