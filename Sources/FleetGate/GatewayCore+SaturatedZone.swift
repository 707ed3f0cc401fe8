import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import NIOCore
import Synchronization

/// A zone with no room anywhere, told on a request's head (issue #19). At twice capacity half the
/// refusals were a busy zone's — central at its `maxConcurrent` — each answered after its body,
/// validation and routing. When a request is refused after routing because its zone is busy and
/// the zone then has no room for any model, the zone is marked; for a second after (renewed by each
/// refusal it makes), a new request from that zone is checked on its head, and refused at once
/// while its zone has capacity and none of it has room.
///
/// Never a refusal of a request routing would serve: routing hands out only a car with room or an
/// endpoint under its `maxConcurrent` and out of a busy back-off, and the check finds none of either
/// for any model. Not while the gateway forwards to other replicas (their cars may have room), nor
/// for a zone whose residency is `preferred` (a request spills), nor when `x-fleet-residency` names
/// another zone (that is a 400). What differs is only the answer of a request routing would refuse
/// otherwise: a body that is not valid (400), a model the zone does not serve or the key may not use
/// (503 `no_capacity_in_zone`, 404) — it gets this 503, as an unauthenticated request to a shedding
/// loop gets 503, not 401.
extension GatewayCore {
    /// How long after a zone was found without room its requests' heads are checked.
    static let saturationWindowNanoseconds: UInt64 = 1_000_000_000

    /// A request in `zone` was refused after routing, its capacity busy: the zone is marked when it
    /// has no room for any model (another model may have room; then nothing is marked).
    func sawBusyZone(_ zone: String) {
        guard self.cluster == nil, self.roomlessZone(zone) != nil else { return }
        self.busyZone.withLock { $0 = zone }
        self.busyZoneSeen.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
    }

    /// The request's origin, as its validation resolves it: the peer (or its PROXY header's source),
    /// or a trusted proxy's `X-Forwarded-For`, looked up in the GeoIP database and the region map.
    func origin(of head: HTTPRequest, connection: HTTPConnectionInfo) -> Origin {
        let peer = connection.remoteAddress.flatMap { IPAddress(peer: $0) }
        let forwarded = head.headerFields[values: .xForwardedFor]
        // edge (#18): a PROXY header's source never makes X-Forwarded-For believed.
        let client = self.clientAddresses.resolve(
            peer: peer, viaProxyProtocol: connection.viaProxyProtocol, forwardedFor: forwarded)
        return self.geo.current.resolver.resolve(client)
    }

    /// The zone of a request whose head shows it would be refused as busy, and the seconds to tell
    /// it to wait; nil to route it. One atomic load unless a zone was marked within
    /// ``saturationWindowNanoseconds``.
    func saturatedZone(of head: HTTPRequest, connection: HTTPConnectionInfo) -> (zone: String, retryAfter: Int)? {
        let seen = self.busyZoneSeen.load(ordering: .relaxed)
        guard seen != 0, self.cluster == nil else { return nil }
        let now = NIODeadline.now().uptimeNanoseconds
        guard now &- seen < Self.saturationWindowNanoseconds else { return nil }
        let zone = self.origin(of: head, connection: connection).zone
        guard zone == self.busyZone.withLock({ $0 }) else { return nil }
        if let residency = head.headerFields[.fleetResidency], residency != zone { return nil }
        guard let retryAfter = self.roomlessZone(zone) else { return nil }
        self.busyZoneSeen.store(now, ordering: .relaxed)
        return (zone, retryAfter)
    }

    /// The seconds until `zone` may have room again when it has capacity and no room for any model
    /// now (1 while a car is only busy or an endpoint only full, else until a busy endpoint's
    /// back-off ends); nil when it has room, has no capacity (routing tells that), or may spill.
    private func roomlessZone(_ zone: String) -> Int? {
        guard self.geo.current.map.zones[zone]?.residency != .preferred else { return nil }
        let cars = self.registry.zoneRoom(zone, now: self.now)
        guard !cars.available else { return nil }
        let central = self.central.zoneRoom(zone)
        guard cars.cars || central.endpoints, !central.room else { return nil }
        return cars.cars ? 1 : central.retryAfter
    }

    /// The answer of a request refused on its head because its zone is saturated.
    static func saturatedZoneError(_ zone: String, retryAfter: Int) -> APIError {
        .overloaded(
            "Every car and central endpoint in privacy zone '\(zone)' is busy. Retry after \(retryAfter) s.",
            retryAfter: retryAfter)
    }
}
