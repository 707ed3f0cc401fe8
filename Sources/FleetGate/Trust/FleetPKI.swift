import Crypto
public import Foundation
import SwiftASN1
public import X509

/// The fleet's certificate authority and the certificates it issues (`fleetgate pki`; issue #20).
///
/// Keys are ECDSA P-256. A vehicle certificate names the car in SAN URIs (`fleet://vehicle/ID`,
/// one per certificate, and `fleet://region/R`, one per allowed region), is for client
/// authentication only, and is short-lived: ``defaultVehicleLifetime`` (7 days), renewed by
/// ``renew(_:lifetime:now:)`` well before it runs out. The gateway's tunnel certificate is issued
/// by the same CA so that cars trust one root.
public struct FleetPKI: Sendable {
    /// A PEM certificate and its PEM private key (PKCS#8).
    public struct Issued: Sendable {
        public var certificatePEM: String
        public var privateKeyPEM: String
        public var certificate: Certificate
    }

    /// How long a vehicle certificate lives unless told otherwise: 7 days.
    public static let defaultVehicleLifetime: TimeInterval = 7 * 86_400
    /// How long the gateway's tunnel certificate lives unless told otherwise: 90 days.
    public static let defaultServerLifetime: TimeInterval = 90 * 86_400
    /// How long the CA lives unless told otherwise: 5 years.
    public static let defaultCALifetime: TimeInterval = 5 * 365 * 86_400
    /// Back-dating of `notValidBefore`, for clocks a little behind.
    static let clockSkew: TimeInterval = 300

    public let certificate: Certificate
    let key: Certificate.PrivateKey

    /// Loads the CA from its PEM certificate and key.
    /// - Throws: ``PKIError`` naming the file.
    public init(certificatePEM: String, privateKeyPEM: String) throws(PKIError) {
        do { self.certificate = try Certificate(pemEncoded: certificatePEM) } catch {
            throw PKIError("the CA certificate does not parse: \(error)")
        }
        do { self.key = Certificate.PrivateKey(try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)) } catch {
            throw PKIError("the CA key is not a PEM P-256 private key")
        }
        guard self.certificate.publicKey == self.key.publicKey else {
            throw PKIError("the CA key does not belong to the CA certificate")
        }
    }

    /// Reads a PEM certificate file.
    public static func certificate(file: String) throws -> Certificate {
        try Certificate(pemEncoded: String(contentsOfFile: file, encoding: .utf8))
    }

    /// Parses a PEM certificate.
    public static func certificate(pem: String) throws -> Certificate { try Certificate(pemEncoded: pem) }

    /// Makes a new self-signed fleet CA.
    public static func makeCA(name: String, lifetime: TimeInterval = Self.defaultCALifetime, now: Date = Date())
        throws -> Issued
    {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("FleetGate fleet")
            CommonName(name)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Self.randomSerial(), publicKey: .init(key.publicKey),
            notValidBefore: now - Self.clockSkew, notValidAfter: now + lifetime, issuer: subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        return try Self.issued(certificate, key)
    }

    /// Issues a vehicle certificate (a new key pair) for `vehicleID` in `regions`.
    public func issueVehicle(
        _ vehicleID: String, regions: [String], lifetime: TimeInterval = Self.defaultVehicleLifetime,
        now: Date = Date()
    ) throws -> Issued {
        try self.issue(
            commonName: vehicleID, names: try Self.vehicleNames(vehicleID, regions: regions), usage: .clientAuth,
            lifetime: lifetime, now: now)
    }

    /// A vehicle certificate's SAN URIs: the vehicle, then each region once.
    private static func vehicleNames(_ vehicleID: String, regions: [String]) throws(PKIError) -> [GeneralName] {
        guard VehicleIdentity.isValidName(vehicleID) else { throw PKIError("'\(vehicleID)' is not a vehicle id") }
        guard !regions.isEmpty else { throw PKIError("a vehicle certificate needs at least one region") }
        for region in regions where !VehicleIdentity.isValidName(region) {
            throw PKIError("'\(region)' is not a region name")
        }
        return [GeneralName.uniformResourceIdentifier(VehicleIdentity.vehiclePrefix + vehicleID)]
            + Set(regions).sorted().map { .uniformResourceIdentifier(VehicleIdentity.regionPrefix + $0) }
    }

    /// Signs a car's certificate signing request (`fleet-agent pki request`): the car made its key and
    /// keeps it; the request brings the public key and proves the car holds the private one. The vehicle id
    /// and regions are the operator's, as for ``issueVehicle(_:regions:lifetime:now:)``; a request whose
    /// common name names another vehicle is refused (a request mixed up with another car's). A renewal
    /// passes the earlier certificate's key as `requiredKey`: a request for that key proves its sender
    /// holds the car's key, so renewals can be signed without another check of who sent them.
    /// - Returns: the certificate, PEM (ending in a newline), and parsed.
    /// - Throws: ``PKIError`` when the request does not parse, its signature does not verify, its key
    ///   is not ECDSA P-256 or P-384, or it names another vehicle.
    public func signVehicle(
        request pem: String, vehicleID: String, regions: [String], requiredKey: Certificate.PublicKey? = nil,
        lifetime: TimeInterval = Self.defaultVehicleLifetime, now: Date = Date()
    ) throws -> (certificatePEM: String, certificate: Certificate) {
        let request: CertificateSigningRequest
        do { request = try CertificateSigningRequest(pemEncoded: pem) } catch {
            // Not the parser's message: it quotes the input back (helper-91).
            throw PKIError(
                "not a PEM certificate signing request, or one cut short (from -----BEGIN CERTIFICATE REQUEST----- to its END line)"
            )
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw PKIError("the certificate signing request's signature does not verify: it was not made with its key")
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil || P384.Signing.PublicKey(request.publicKey) != nil
        else {
            throw PKIError("the certificate signing request's key is not ECDSA P-256 or P-384")
        }
        if let requiredKey, request.publicKey != requiredKey {
            throw PKIError(
                "the certificate signing request is for another key than the certificate it renews: a new key needs --vehicle and --region"
            )
        }
        let named = request.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.commonName }
            .map { String(describing: $0.value) }
        if let name = named.first, name != vehicleID {
            throw PKIError("the certificate signing request is for vehicle '\(name)', not '\(vehicleID)'")
        }
        let names = try Self.vehicleNames(vehicleID, regions: regions)
        let certificate = try self.issue(
            commonName: vehicleID, names: names, usage: .clientAuth, publicKey: request.publicKey, lifetime: lifetime,
            now: now)
        return (try certificate.serializeAsPEM().pemString + "\n", certificate)
    }

    /// Issues the gateway's tunnel (server) certificate for DNS names and IP addresses.
    public func issueServer(names: [String], lifetime: TimeInterval = Self.defaultServerLifetime, now: Date = Date())
        throws -> Issued
    {
        guard let first = names.first else { throw PKIError("a server certificate needs at least one name") }
        let general: [GeneralName] = names.map { name in
            if let bytes = Self.ipBytes(name) { return .ipAddress(ASN1OctetString(contentBytes: bytes[...])) }
            return .dnsName(name)
        }
        return try self.issue(commonName: first, names: general, usage: .serverAuth, lifetime: lifetime, now: now)
    }

    /// Renews a vehicle certificate for the key its car keeps: a request (``signVehicle(request:vehicleID:regions:requiredKey:lifetime:now:)``)
    /// for `earlier`'s key, signed for its vehicle and regions once ``renewable(_:revocations:now:)`` allows it.
    /// A request for that key proves its sender holds the car's key.
    public func signRenewal(
        request pem: String, of earlier: Certificate, revocations: RevocationList?,
        lifetime: TimeInterval = Self.defaultVehicleLifetime, now: Date = Date()
    ) throws -> (certificatePEM: String, certificate: Certificate) {
        let identity = try self.renewable(earlier, revocations: revocations, now: now)
        return try self.signVehicle(
            request: pem, vehicleID: identity.vehicleID, regions: identity.regions, requiredKey: earlier.publicKey,
            lifetime: lifetime, now: now)
    }

    /// Renews a vehicle certificate: the same vehicle and regions, a new key and serial, a new lifetime.
    /// - Throws: ``PKIError`` when `certificate` is not one of this CA's current vehicle certificates, or
    ///   `revocations` names it (``renewable(_:revocations:now:)``).
    public func renew(
        _ certificate: Certificate, revocations: RevocationList? = nil,
        lifetime: TimeInterval = Self.defaultVehicleLifetime, now: Date = Date()
    ) throws -> Issued {
        let identity = try self.renewable(certificate, revocations: revocations, now: now)
        return try self.issueVehicle(identity.vehicleID, regions: identity.regions, lifetime: lifetime, now: now)
    }

    /// The identity of a certificate that may be renewed: a vehicle certificate this CA signed (not a
    /// look-alike that names the vehicle and regions an attacker wants: helper-91), valid now (an expired
    /// one is not renewed: its key may have been stolen long ago), and not revoked by serial or vehicle.
    /// - Throws: ``PKIError`` saying which.
    public func renewable(_ certificate: Certificate, revocations: RevocationList?, now: Date = Date()) throws(PKIError)
        -> VehicleIdentity
    {
        guard certificate.issuer == self.certificate.subject,
            self.certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
        else { throw PKIError("the certificate to renew was not issued by this CA") }
        guard certificate.notValidBefore <= now + Self.clockSkew, now < certificate.notValidAfter else {
            throw PKIError(
                "the certificate to renew is not valid now (\(certificate.notValidBefore) … \(certificate.notValidAfter)); issue a new one"
            )
        }
        let identity: VehicleIdentity
        do { identity = try VehicleIdentity(certificate) } catch {
            throw PKIError("the certificate to renew is not a vehicle certificate: \(error)")
        }
        if let revocations, revocations.isRevoked(identity) || revocations.isRevoked(vehicleID: identity.vehicleID) {
            throw PKIError(
                "the certificate to renew is revoked (serial \(identity.serial), vehicle \(identity.vehicleID))")
        }
        return identity
    }

    /// Issues a certificate with a new key pair.
    private func issue(
        commonName: String, names: [GeneralName], usage: ExtendedKeyUsage.Usage, lifetime: TimeInterval, now: Date
    ) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let certificate = try self.issue(
            commonName: commonName, names: names, usage: usage, publicKey: .init(key.publicKey), lifetime: lifetime,
            now: now)
        return try Self.issued(certificate, key)
    }

    /// Issues a certificate for `publicKey`, signed by the CA.
    private func issue(
        commonName: String, names: [GeneralName], usage: ExtendedKeyUsage.Usage, publicKey: Certificate.PublicKey,
        lifetime: TimeInterval, now: Date
    ) throws -> Certificate {
        guard lifetime > 0, lifetime.isFinite else { throw PKIError("the lifetime must be positive and finite") }
        let subject = try DistinguishedName {
            OrganizationName("FleetGate fleet")
            CommonName(commonName)
        }
        let notAfter = min(now + lifetime, self.certificate.notValidAfter)
        return try Certificate(
            version: .v3, serialNumber: Self.randomSerial(), publicKey: publicKey,
            notValidBefore: now - Self.clockSkew, notValidAfter: notAfter, issuer: self.certificate.subject,
            subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: self.key)
    }

    private static func issued(_ certificate: Certificate, _ key: P256.Signing.PrivateKey) throws -> Issued {
        // Each PEM ends in a newline, so that files can be concatenated into a CA bundle.
        Issued(
            certificatePEM: try certificate.serializeAsPEM().pemString + "\n",
            privateKeyPEM: key.pemRepresentation + "\n",
            certificate: certificate)
    }

    /// 16 random bytes, positive.
    static func randomSerial() -> Certificate.SerialNumber {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[0] = (bytes[0] & 0x7F) | 0x10
        return Certificate.SerialNumber(bytes: bytes)
    }

    static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

/// Why a PKI operation failed.
public struct PKIError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
