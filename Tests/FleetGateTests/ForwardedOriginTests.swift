import Crypto
import FleetGate
import FleetGeo
import Foundation
import Testing

@Suite("Forwarded origin between replicas (issue #21)")
struct ForwardedOriginTests {
    static var key: SymmetricKey { ForwardedOrigin.key(fleetSecret: "0123456789abcdef-fleet") }
    static let map = RegionMap.default
    static let now = 1_800_000_000
    static let origin = ForwardedOrigin(
        origin: Origin(country: "SE", region: "eu-north", zone: "eu", rule: .database), expires: now + 30,
        requestID: "req-1")

    @Test("A signed origin verifies and gives back the region, zone, country and rule")
    func roundTrip() throws {
        let value = Self.origin.signed(with: Self.key)
        let verified = try ForwardedOrigin.verify(value, key: Self.key, map: Self.map, now: Self.now)
        #expect(verified == Self.origin)
    }

    @Test(
        "Refused: another key, a changed field, expired, a zone the receiver's map disagrees with, garbage",
        arguments: [
            ("other key", Self.origin.signed(with: ForwardedOrigin.key(fleetSecret: "another-secret-0123456")),
             ForwardedOrigin.Refusal.badSignature),
            ("zone loosened", Self.origin.signed(with: Self.key).replacingOccurrences(of: ";eu;", with: ";us;"),
             .badSignature),
            ("expired",
             ForwardedOrigin(origin: Self.origin.origin, expires: Self.now - 1, requestID: "r").signed(with: Self.key),
             .expired),
            ("zone mismatch",
             ForwardedOrigin(
                origin: Origin(country: "SE", region: "eu-north", zone: "us", rule: .database), expires: Self.now + 5,
                requestID: "r"
             ).signed(with: Self.key), .zoneMismatch),
            ("garbage", "v1;eu-north", .malformed),
        ] as [(String, String, ForwardedOrigin.Refusal)])
    func refused(_ name: String, value: String, refusal: ForwardedOrigin.Refusal) {
        #expect(throws: refusal) { try ForwardedOrigin.verify(value, key: Self.key, map: Self.map, now: Self.now) }
    }
}
