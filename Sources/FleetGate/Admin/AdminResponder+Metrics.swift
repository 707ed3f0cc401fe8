import FleetGeo
import FleetScheduler

/// Gauges computed from the gateway's state when `/metrics` is scraped.
extension AdminResponder {
    /// Sets ``FleetStateMetrics``' gauges from the registry, the in-flight count, the region map, the
    /// GeoIP database, the TLS certificate files in use and the central endpoints.
    func publishFleetState() {
        let geo = self.core.geo.current
        let state = self.core.metrics.fleetState
        state.register(regions: geo.map.regions.mapValues(\.zone), zones: geo.map.zones.keys)
        let listeners = self.core.configuration.listeners
        var certificates: [String: String] = [:]
        if let files = listeners.tls.files { certificates["tls"] = files.certificateChain }
        if let files = listeners.tunnel.files { certificates["tunnel"] = files.certificateChain }
        state.publish(
            cars: self.core.registry.all(), inFlight: self.core.requestsInFlight,
            geoipBuildEpoch: geo.database?.buildEpoch, certificateFiles: certificates)
        state.central.publish(self.core.central.all)
    }
}
