public import Crypto
public import FleetGeo
import Foundation

/// The `x-fleet-forwarded-origin` header one replica signs for another (issue #21).
///
/// 1. Carries what the first replica resolved of the client — region, zone, country, rule —
///    never the client's address, with the request id and an expiry.
/// 2. Is signed with HMAC-SHA256 under a key derived from the fleet secret every replica shares,
///    so only a replica can make one; verified in constant time.
/// 3. Is believed only on the internal listener; on a client listener it is ignored, as is
///    `x-fleet-hop` (so a client cannot forge either). The receiver recomputes the zone from the
///    region with its own map and refuses a mismatch: the zone is enforced again there.
///
/// Format: `v1;<region>;<zone>;<country or ->;<rule>;<expires unix s>;<request id>;<base64url MAC>`.
package struct ForwardedOrigin: Sendable, Hashable {
    package var origin: Origin
    package var expires: Int
    package var requestID: String

    package init(origin: Origin, expires: Int, requestID: String) {
        self.origin = origin
        self.expires = expires
        self.requestID = requestID
    }

    /// How long a signed origin is valid: a forwarded request is sent at once.
    package static let lifetimeSeconds = 30

    /// Derives the forwarding key from the fleet secret (a separate key from the vehicle tokens').
    package static func key(fleetSecret: String) -> SymmetricKey {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("fleetgate forwarded-origin v1".utf8), using: SymmetricKey(data: Data(fleetSecret.utf8)))
        return SymmetricKey(data: Data(mac))
    }

    /// The signed header value.
    package func signed(with key: SymmetricKey) -> String {
        let payload = self.payload
        let mac = HMAC<SHA256>.authenticationCode(for: Data(payload.utf8), using: key)
        return payload + ";" + FleetCredentials.base64url(Data(mac))
    }

    private var payload: String {
        [
            "v1", self.origin.region, self.origin.zone, self.origin.country ?? "-", self.origin.rule.rawValue,
            String(self.expires), self.requestID,
        ].joined(separator: ";")
    }

    /// Why a header was refused.
    package enum Refusal: Error, Equatable {
        case malformed, badSignature, expired, zoneMismatch
    }

    /// Verifies `value` and re-derives the zone from the region with `map`.
    package static func verify(_ value: String, key: SymmetricKey, map: RegionMap, now: Int) throws(Refusal)
        -> ForwardedOrigin
    {
        guard value.utf8.count <= 512 else { throw .malformed }
        let parts = value.split(separator: ";", omittingEmptySubsequences: false)
        guard parts.count == 8, parts[0] == "v1", let expires = Int(parts[5]),
            let rule = Origin.Rule(rawValue: String(parts[4])), let mac = FleetCredentials.unbase64url(parts[7])
        else { throw .malformed }
        let payload = parts[0..<7].joined(separator: ";")
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(payload.utf8), using: key) else {
            throw .badSignature
        }
        guard now <= expires, expires - now <= Self.lifetimeSeconds * 2 else { throw .expired }
        let region = String(parts[1]), zone = String(parts[2])
        guard let found = map.zone(ofRegion: region), found.id == zone else { throw .zoneMismatch }
        let country = parts[3] == "-" ? nil : String(parts[3])
        var origin = Origin(country: country, region: region, zone: zone, rule: rule)
        origin.spills = found.residency == .preferred  // this replica's map decides, as for its own requests
        return ForwardedOrigin(origin: origin, expires: expires, requestID: String(parts[6]))
    }
}
