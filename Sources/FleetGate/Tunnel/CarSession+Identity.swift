import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import Foundation
import Logging
import NIOCore
import NIOSSL

extension CarSession {
    /// The grant of the hello's credential: the mTLS peer certificate (`tunnel.auth: certificate`),
    /// whose vehicle id must be the hello's, or the HMAC token (`token`, development).
    func verifiedGrant(credential: String, vehicleID: String) throws(CredentialError) -> FleetCredentials.Grant {
        switch self.core.configuration.tunnel.auth {
        case .token:
            return try self.core.credentials.verify(credential, vehicleID: vehicleID)
        case .certificate:
            guard
                let handler = try? self.handle.channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
                let certificate = handler.peerCertificate, let der = try? certificate.toDERBytes()
            else { throw CredentialError(reason: "no client certificate") }
            let identity = try VehicleIdentity(derEncoded: der)
            guard identity.vehicleID == vehicleID else {
                throw CredentialError(reason: "hello's vehicle id is not the certificate's")
            }
            self.identity = identity
            return FleetCredentials.Grant(
                vehicleID: identity.vehicleID, regions: identity.regions, expires: identity.notValidAfter)
        }
    }

    /// DESIGN.md: the tunnel peer's GeoIP is recorded and a mismatch with the claimed region is
    /// flagged. Only flagged: cars roam and carriers route through other countries, and the
    /// credential, not the address, is what binds a car to its zone.
    func checkPeerLocation(claimedZone: String) {
        guard let ip = self.handle.channel.remoteAddress?.ipAddress.flatMap({ IPAddress($0) }) else { return }
        let origin = self.core.geo.current.resolver.resolve(ip)
        guard origin.rule == .database else { return }
        if origin.zone != claimedZone {
            self.core.metrics.carLocationMismatch.increment()
            self.logger.warning(
                "Car connects from outside its zone",
                metadata: [
                    "fleet.peer.country": "\(origin.country ?? "-")", "fleet.peer.zone": "\(origin.zone)",
                    "fleet.zone": "\(claimedZone)",
                ])
        }
    }
}
