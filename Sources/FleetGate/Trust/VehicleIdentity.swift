import FleetProtocol
public import Foundation
import SwiftASN1
public import X509

/// Who a vehicle certificate says the car is: its vehicle id and the regions it may serve, from
/// the SAN URIs `fleet://vehicle/ID` and `fleet://region/R` (issue #20; `docs/security.md`).
///
/// The TLS handshake has already proved that the fleet CA signed the certificate and that the car
/// holds its key; this type only reads what the certificate grants. A certificate with no vehicle
/// URI, with two, or with no region grants nothing.
public struct VehicleIdentity: Sendable, Hashable {
    /// The SAN URI prefix of the vehicle id.
    public static let vehiclePrefix = "fleet://vehicle/"
    /// The SAN URI prefix of an allowed region.
    public static let regionPrefix = "fleet://region/"

    public var vehicleID: String
    /// The regions the car may serve, sorted.
    public var regions: [String]
    /// The certificate's serial number, lowercase hex without separators (the revocation file's form).
    public var serial: String
    public var notValidBefore: Date
    public var notValidAfter: Date

    /// Reads the identity from a certificate.
    /// - Throws: ``CredentialError`` naming what is missing (never the certificate's bytes).
    public init(_ certificate: Certificate) throws(CredentialError) {
        let names: SubjectAlternativeNames
        do {
            guard let found = try certificate.extensions.subjectAlternativeNames else {
                throw CredentialError(reason: "certificate has no subject alternative names")
            }
            names = found
        } catch let error as CredentialError {
            throw error
        } catch {
            throw CredentialError(reason: "certificate's subject alternative names are malformed")
        }
        var vehicles: [String] = []
        var regions: Set<String> = []
        for name in names {
            guard case .uniformResourceIdentifier(let uri) = name else { continue }
            if uri.hasPrefix(Self.vehiclePrefix) {
                vehicles.append(String(uri.dropFirst(Self.vehiclePrefix.count)))
            } else if uri.hasPrefix(Self.regionPrefix) {
                regions.insert(String(uri.dropFirst(Self.regionPrefix.count)))
            }
        }
        guard vehicles.count == 1, let vehicle = vehicles.first, Self.isValidName(vehicle) else {
            throw CredentialError(reason: "certificate must name exactly one vehicle (fleet://vehicle/ID)")
        }
        guard !regions.isEmpty, regions.allSatisfy(Self.isValidName) else {
            throw CredentialError(reason: "certificate names no valid region (fleet://region/R)")
        }
        self.vehicleID = vehicle
        self.regions = regions.sorted()
        self.serial = Self.hex(certificate.serialNumber.bytes)
        self.notValidBefore = certificate.notValidBefore
        self.notValidAfter = certificate.notValidAfter
    }

    /// Reads the identity from a DER certificate (what the TLS stack hands over after the handshake).
    public init(derEncoded bytes: [UInt8]) throws(CredentialError) {
        let certificate: Certificate
        do { certificate = try Certificate(derEncoded: bytes) } catch {
            throw CredentialError(reason: "peer certificate does not parse")
        }
        try self.init(certificate)
    }

    /// Vehicle ids and regions: 1–128 characters of letters, digits, `-`, `_`, `.`.
    public static func isValidName(_ name: String) -> Bool { FleetName.isValid(name) }

    /// Lowercase hex of a serial number's bytes, leading zero bytes dropped.
    public static func hex<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let trimmed = bytes.drop { $0 == 0 }
        let text = trimmed.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        return text.isEmpty ? "00" : text
    }
}
