import Crypto
import FleetProtocol
public import Foundation
import SwiftASN1
import X509

/// A car's own key and its certificate signing request (`fleet-agent pki request`; issue #20).
///
/// The key is made on the car, written only there (mode 0600) and kept across renewals; the request
/// carries the public key, signed with the private one, to the fleet CA (`fleetgate pki sign`), which
/// names the vehicle and its regions. So no private key travels, unlike `fleetgate pki issue`, whose
/// key is made beside the CA and must be carried to the car.
public enum VehicleKeyRequest {
    /// The request for `vehicleID` (its common name), with the P-256 key in `keyFile`, made first when
    /// the file does not exist.
    /// - Returns: the request, PEM ending in a newline, and whether the key was made now.
    /// - Throws: ``VehicleKeyRequestError`` naming the file when it exists and is not a PEM P-256 key or is
    ///   open to other users, or cannot be written.
    public static func make(keyFile: String, vehicleID: String) throws(VehicleKeyRequestError) -> (
        requestPEM: String, madeKey: Bool
    ) {
        // The names a vehicle certificate may carry (the CA refuses others): found here, before a file is written.
        guard FleetName.isValid(vehicleID) else {
            throw VehicleKeyRequestError("'\(vehicleID)' is not a vehicle id: 1–128 letters, digits, '-', '_' or '.'")
        }
        let (key, made) = try Self.key(at: keyFile)
        do {
            let subject = try DistinguishedName { CommonName(vehicleID) }
            let request = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: .init(key), attributes: .init(),
                signatureAlgorithm: .ecdsaWithSHA256)
            return (try request.serializeAsPEM().pemString + "\n", made)
        } catch {
            throw VehicleKeyRequestError("cannot make the request for '\(vehicleID)': \(error)")
        }
    }

    /// The key in `path`, or a new one written there (0600, never over an existing file). An existing key
    /// open to group or others (any of mode 077) is refused.
    private static func key(at path: String) throws(VehicleKeyRequestError) -> (P256.Signing.PrivateKey, Bool) {
        // There, even as a dangling link (the attributes are the link's own): never replaced.
        if (try? FileManager.default.attributesOfItem(atPath: path)) != nil {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw VehicleKeyRequestError(
                    "\(path): cannot read the key file (a directory, a dangling link, or not readable)")
            }
            // As ssh refuses an unprotected key: a car's identity, readable by its other users, is not its own.
            // The key's own mode, through any link (`attributesOfItem` reads a link's own).
            let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            if let mode = (try? FileManager.default.attributesOfItem(atPath: target))?[.posixPermissions] as? Int,
                mode & 0o077 != 0
            {
                throw VehicleKeyRequestError(
                    "\(path): the key file is open to other users (mode \(String(mode & 0o777, radix: 8))); "
                        + "`chmod 600 \(path)` if it was never shared, or remove it to make a new key")
            }
            guard let text = String(data: data, encoding: .utf8),
                let key = try? P256.Signing.PrivateKey(pemRepresentation: text)
            else { throw VehicleKeyRequestError("\(path): not a PEM P-256 private key (PKCS#8 or SEC 1)") }
            return (key, false)
        }
        let key = P256.Signing.PrivateKey()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw VehicleKeyRequestError("\(path): cannot create the key file: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array((key.pemRepresentation + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            unlink(path)
            throw VehicleKeyRequestError("\(path): cannot write the key file: \(String(cString: strerror(errno)))")
        }
        return (key, true)
    }
}

/// Why a car's key or request could not be made; names the file.
public struct VehicleKeyRequestError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
