import Crypto
import FleetGate
import Foundation
import SwiftASN1
import Testing
import X509

/// Issue #20: the CA signs a car's request for its own key (`fleetgate pki sign`), so no private key travels.
@Suite("The fleet CA signs a car's certificate signing request")
struct FleetPKISigningTests {
    let ca: FleetPKI

    init() throws {
        let made = try FleetPKI.makeCA(name: "test fleet CA")
        self.ca = try FleetPKI(certificatePEM: made.certificatePEM, privateKeyPEM: made.privateKeyPEM)
    }

    static func request(_ name: String?, key: Certificate.PrivateKey, signedWith signer: Certificate.PrivateKey? = nil)
        throws -> String
    {
        let subject = try DistinguishedName { if let name { CommonName(name) } }
        let algorithm: Certificate.SignatureAlgorithm =
            key.publicKey.description.contains("Ed25519") ? .ed25519 : .ecdsaWithSHA256
        var request = try CertificateSigningRequest(
            version: .v1, subject: subject, privateKey: key, attributes: .init(), signatureAlgorithm: algorithm)
        if let signer {
            // The request's public key, signed with another key: it does not prove the key is held.
            let other = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: signer, attributes: .init(), signatureAlgorithm: algorithm)
            request = try CertificateSigningRequest(
                version: .v1, subject: subject, publicKey: key.publicKey, attributes: .init(),
                signatureAlgorithm: algorithm, signature: other.signature)
        }
        return try request.serializeAsPEM().pemString
    }

    @Test("The certificate carries the request's key, the operator's vehicle and regions, for client authentication")
    func signs() throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let signed = try self.ca.signVehicle(
            request: try Self.request("car-0042", key: key), vehicleID: "car-0042", regions: ["eu-west", "eu-central"])
        #expect(signed.certificate.publicKey == key.publicKey)
        #expect(signed.certificate.issuer == self.ca.certificate.subject)
        #expect(self.ca.certificate.publicKey.isValidSignature(signed.certificate.signature, for: signed.certificate))
        let identity = try VehicleIdentity(signed.certificate)
        #expect(identity.vehicleID == "car-0042")
        #expect(identity.regions == ["eu-central", "eu-west"])
        let usage = try #require(try signed.certificate.extensions.extendedKeyUsage)
        #expect(Array(usage) == [.clientAuth])
        #expect(try Certificate(pemEncoded: signed.certificatePEM) == signed.certificate)
        // A request without a common name takes the operator's vehicle id.
        let unnamed = try self.ca.signVehicle(
            request: try Self.request(nil, key: key), vehicleID: "car-0042", regions: ["eu-west"])
        #expect(try VehicleIdentity(unnamed.certificate).vehicleID == "car-0042")
        // A renewal for the earlier certificate's key; another key is refused there.
        let renewed = try self.ca.signVehicle(
            request: try Self.request("car-0042", key: key), vehicleID: "car-0042", regions: ["eu-west"],
            requiredKey: signed.certificate.publicKey)
        #expect(renewed.certificate.publicKey == key.publicKey)
        let other = try Self.request("car-0042", key: .init(P256.Signing.PrivateKey()))
        #expect(throws: PKIError.self) {
            try self.ca.signVehicle(
                request: other, vehicleID: "car-0042", regions: ["eu-west"], requiredKey: signed.certificate.publicKey)
        }
    }

    @Test("Only this CA's current, unrevoked vehicle certificate is renewed (helper-91: a look-alike got any regions)")
    func renewable() throws {
        let issued = try self.ca.issueVehicle("car-0042", regions: ["eu-central"])
        let current = issued.certificate
        #expect(try self.ca.renewable(current, revocations: nil).vehicleID == "car-0042")
        // A renewal for the car's own key keeps its vehicle and regions.
        let carKey = Certificate.PrivateKey(try P256.Signing.PrivateKey(pemRepresentation: issued.privateKeyPEM))
        let renewed = try self.ca.signRenewal(
            request: try Self.request("car-0042", key: carKey), of: current, revocations: nil)
        #expect(try VehicleIdentity(renewed.certificate).regions == ["eu-central"])
        // A look-alike from a CA of the same name, naming other regions.
        let made = try FleetPKI.makeCA(name: "test fleet CA")
        let rogue = try FleetPKI(certificatePEM: made.certificatePEM, privateKeyPEM: made.privateKeyPEM)
        let forged = try rogue.issueVehicle("car-0042", regions: ["eu-central", "us-west"]).certificate
        #expect(forged.issuer == current.issuer)
        let error = #expect(throws: PKIError.self) { try self.ca.renewable(forged, revocations: nil) }
        #expect(error?.description.contains("not issued by this CA") == true)
        #expect(throws: PKIError.self) { try self.ca.renew(forged) }
        #expect(throws: PKIError.self) {
            try self.ca.signRenewal(request: try Self.request("car-0042", key: carKey), of: forged, revocations: nil)
        }
        // Expired a day ago; revoked by serial, or by vehicle.
        let expired = try self.ca.issueVehicle(
            "car-0042", regions: ["eu-central"], lifetime: 86_400, now: Date() - 2 * 86_400
        ).certificate
        #expect(throws: PKIError.self) { try self.ca.renewable(expired, revocations: nil) }
        let serial = try VehicleIdentity(current).serial
        for text in ["serial \(serial)\n", "vehicle car-0042\n"] {
            let revocations = try RevocationList(parsing: text)
            #expect(throws: PKIError.self) { try self.ca.renewable(current, revocations: revocations) }
        }
        #expect(throws: PKIError.self) {
            try self.ca.issueVehicle("car-0042", regions: ["eu-central"], lifetime: .infinity)
        }
    }

    @Test(
        "Refused: another vehicle's request, a signature from another key, a key that is not ECDSA, no request at all")
    func refuses() throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        #expect(throws: PKIError.self) {
            try self.ca.signVehicle(
                request: try Self.request("car-0042", key: key), vehicleID: "car-0043", regions: ["eu-west"])
        }
        let forged = try Self.request("car-0042", key: key, signedWith: .init(P256.Signing.PrivateKey()))
        let error = #expect(throws: PKIError.self) {
            try self.ca.signVehicle(request: forged, vehicleID: "car-0042", regions: ["eu-west"])
        }
        #expect(error?.description.contains("signature does not verify") == true)
        let edwards = try Self.request("car-0042", key: .init(Curve25519.Signing.PrivateKey()))
        #expect(throws: PKIError.self) {
            try self.ca.signVehicle(request: edwards, vehicleID: "car-0042", regions: ["eu-west"])
        }
        let garbage = #expect(throws: PKIError.self) {
            try self.ca.signVehicle(request: "not a request", vehicleID: "car-0042", regions: ["eu-west"])
        }
        #expect(garbage?.description.hasPrefix("not a PEM certificate signing request") == true)
        #expect(throws: PKIError.self) {
            try self.ca.signVehicle(request: try Self.request("car-0042", key: key), vehicleID: "car-0042", regions: [])
        }
    }
}
