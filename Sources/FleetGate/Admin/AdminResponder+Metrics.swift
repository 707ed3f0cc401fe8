import FleetGeo
import FleetScheduler
import Foundation
import Prometheus

/// Gauges computed from the gateway's state when `/metrics` is scraped.
extension AdminResponder {
    /// The `/metrics` body: ``FleetStateMetrics``' gauges set from the registry, the in-flight count,
    /// the region map, the GeoIP database, the TLS certificates served and the central endpoints,
    /// then the Prometheus registry's output and `fleet_cars` (``FleetCarsExposition``), with a
    /// `# HELP` line for each family (``MetricHelp``).
    func metricsBody() -> [UInt8] {
        let geo = self.core.geo.current
        let state = self.core.metrics.fleetState
        state.register(zones: geo.map.zones.keys)
        // The certificates being served (their contexts'), not the files on disk.
        let certificates = [
            "tls": self.reloader.clientTLS.notAfter ?? 0, "tunnel": self.reloader.tunnelTLS.notAfter ?? 0,
        ]
        let cars = state.publish(
            cars: self.core.registry.all(), regions: geo.map.regions.mapValues(\.zone),
            inFlight: self.core.requestsInFlight, geoipBuildEpoch: geo.database?.buildEpoch,
            certificateExpiry: certificates,
            credentialsExpiring: self.core.credentialExpiries.count(
                expiringBefore: Date().timeIntervalSince1970 + FleetStateMetrics.expiringWindow),
            buffered: (self.core.requestBodyBytesHeld, self.core.answerBytesHeld))
        state.central.publish(self.core.central.all)
        var body = self.prometheus.emitToBuffer()
        cars.write(into: &body)
        return MetricHelp.annotate(body)
    }
}
