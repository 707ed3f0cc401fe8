import Crypto
import FleetProtocol
public import Foundation
import NIOCore

/// Vehicle tokens and pseudonyms, both keyed by the fleet secret (DESIGN.md, hello verification).
///
/// A token is `fgv1.<payload>.<mac>`, both parts base64url: the payload is JSON
/// `{"vid","regions","exp"}`, the MAC is HMAC-SHA256 over the payload's bytes. Verification
/// compares MACs in constant time and binds the vehicle id to the regions it may serve.
public struct FleetCredentials: Sendable {
    private let secret: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: self.secret) }

    /// - Parameter secret: the fleet secret (at least 16 bytes).
    public init(secret: String) throws(CredentialError) {
        guard secret.utf8.count >= 16 else {
            throw CredentialError(reason: "the fleet secret must be at least 16 bytes")
        }
        self.secret = Array(secret.utf8)
    }

    struct Payload: Codable {
        var vid: String
        var regions: [String]
        var exp: Int
    }

    /// What a verified token grants.
    public struct Grant: Sendable, Hashable {
        public var vehicleID: String
        public var regions: [String]
        public var expires: Date
    }

    /// Mints a token for a vehicle, valid in `regions` until `expires`.
    public func issue(vehicleID: String, regions: [String], expires: Date) -> String {
        let claims = Payload(vid: vehicleID, regions: regions.sorted(), exp: Int(expires.timeIntervalSince1970))
        let payload = Data(JSON.buffer(claims).readableBytesView)
        let mac = HMAC<SHA256>.authenticationCode(for: payload, using: self.key)
        return "fgv1." + Self.base64url(payload) + "." + Self.base64url(Data(mac))
    }

    /// Verifies a token for `vehicleID` at `now`.
    /// - Throws: ``CredentialError`` naming what failed (never echoing the token).
    public func verify(_ token: String, vehicleID: String, now: Date = Date()) throws(CredentialError) -> Grant {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "fgv1", let payload = Self.unbase64url(parts[1]),
            let mac = Self.unbase64url(parts[2])
        else { throw CredentialError(reason: "malformed token") }
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: payload, using: self.key) else {
            throw CredentialError(reason: "bad signature")
        }
        guard let decoded = try? JSONDecoder().decode(Payload.self, from: payload) else {
            throw CredentialError(reason: "malformed payload")
        }
        guard decoded.vid == vehicleID else { throw CredentialError(reason: "token was issued for another vehicle") }
        // The revocation and quarantine files name vehicles by id, one word a line (helper-77: `car#1`
        // was written as `vehicle car`, `car 1` made the file unreadable); certificates are held to this too.
        guard VehicleIdentity.isValidName(decoded.vid) else {
            throw CredentialError(reason: "the token's vehicle id is not letters, digits, '-', '_' or '.'")
        }
        let expires = Date(timeIntervalSince1970: TimeInterval(decoded.exp))
        guard expires > now else { throw .tokenExpired }
        return Grant(vehicleID: decoded.vid, regions: decoded.regions, expires: expires)
    }

    /// The keyed, daily-rotated pseudonym of a vehicle id: what clients and logs see.
    public func pseudonym(of vehicleID: String, now: Date = Date()) -> String {
        let day = Int(now.timeIntervalSince1970) / 86_400
        let mac = HMAC<SHA256>.authenticationCode(for: Data("pseudonym|\(day)|\(vehicleID)".utf8), using: self.key)
        return "v-" + Data(mac).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}

/// Why a credential was rejected.
public struct CredentialError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "credential rejected: \(self.reason)" }

    /// A token past its expiry: refused for good, the car is told (`token-expired`).
    public static let tokenExpired = CredentialError(reason: "token expired")
}
