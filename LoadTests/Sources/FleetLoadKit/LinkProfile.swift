package import FleetProtocol

/// The numbers of one car's link, which ``LinkEmulator`` applies to its tunnel: the round trip
/// (split evenly into two one-way delays), jitter on each one-way delay, and the bandwidth each
/// way (bytes are serialised at that rate, so a large body takes its time).
///
/// Defaults per link type (`../shared/FLEET.md`, "Links"): home Wi-Fi ≈ 15 ms median RTT (Ookla);
/// LTE/5G ≈ 47–64 ms and ≈ 12–15 Mbit/s up (Ookla) — 55 ms and 13 Mbit/s here; Starlink ≈ 40–45 ms
/// and ≈ 15–17 Mbit/s up (Ookla 2025) — 42 ms and 16 Mbit/s. Jitter, the downlinks, Wi-Fi's
/// uplink and everything about `ethernet` (a wired garage link) have no public figure in
/// FLEET.md: they are assumptions, chosen plausible and stated here.
package struct LinkProfile: Sendable, Hashable, Codable {
    package var rttMilliseconds: Double
    /// Each one-way delay is drawn uniformly in ±this around RTT ÷ 2 (never below zero; order kept).
    package var jitterMilliseconds: Double
    /// Car → gateway.
    package var uplinkMbps: Double
    /// Gateway → car.
    package var downlinkMbps: Double

    package init(rttMilliseconds: Double, jitterMilliseconds: Double, uplinkMbps: Double, downlinkMbps: Double) {
        self.rttMilliseconds = rttMilliseconds
        self.jitterMilliseconds = jitterMilliseconds
        self.uplinkMbps = uplinkMbps
        self.downlinkMbps = downlinkMbps
    }

    /// The default profile of a link type (sources above).
    package static func defaults(for type: LinkType) -> LinkProfile {
        switch type {
        case .wifi: LinkProfile(rttMilliseconds: 15, jitterMilliseconds: 4, uplinkMbps: 20, downlinkMbps: 100)
        case .cellular: LinkProfile(rttMilliseconds: 55, jitterMilliseconds: 15, uplinkMbps: 13, downlinkMbps: 40)
        case .satellite: LinkProfile(rttMilliseconds: 42, jitterMilliseconds: 10, uplinkMbps: 16, downlinkMbps: 100)
        case .ethernet: LinkProfile(rttMilliseconds: 4, jitterMilliseconds: 1, uplinkMbps: 100, downlinkMbps: 500)
        }
    }
}
