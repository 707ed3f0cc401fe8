import ArgumentParser
import FleetGate
import Foundation
import X509

/// `fleetgate pki`: the fleet CA and vehicle certificates (issue #20; `docs/security.md`).
struct PKI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki", abstract: "Fleet CA and vehicle certificates.",
        subcommands: [InitCA.self, Issue.self, Sign.self, IssueServer.self, Renew.self, Revoke.self, Show.self])

    struct CAOptions: ParsableArguments {
        @Option(help: "Directory of the fleet CA (ca.pem, ca-key.pem).") var caDir = "."

        func load() throws -> FleetPKI {
            let cert = try readPEM(self.caDir + "/ca.pem")
            let key = try readPEM(self.caDir + "/ca-key.pem")
            return try labelled(self.caDir) { try FleetPKI(certificatePEM: cert, privateKeyPEM: key) }
        }
    }

    struct InitCA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init-ca", abstract: "Create the fleet CA: DIR/ca.pem and DIR/ca-key.pem (mode 0600).")
        @Option(help: "Directory to write to (created if missing).") var caDir = "."
        @Option(help: "The CA's common name.") var name = "FleetGate fleet CA"
        @Option(help: "Validity in days.") var days = 1825

        func run() async throws {
            try FileManager.default.createDirectory(atPath: self.caDir, withIntermediateDirectories: true)
            guard !FileManager.default.fileExists(atPath: self.caDir + "/ca-key.pem") else {
                throw ValidationError("\(self.caDir)/ca-key.pem exists; refusing to replace a CA")
            }
            let ca = try FleetPKI.makeCA(name: self.name, lifetime: Double(self.days) * 86_400)
            try writePair(ca, to: self.caDir + "/ca")
            print("CA \(self.caDir)/ca.pem (valid until \(ca.certificate.notValidAfter)); key \(self.caDir)/ca-key.pem")
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a vehicle certificate: OUT.pem and OUT-key.pem (default lifetime 7 days).")
        @OptionGroup var ca: CAOptions
        @Option(help: "The vehicle id (fleet://vehicle/ID).") var vehicle: String
        @Option(help: "A region the car may serve (repeatable; fleet://region/R).") var region: [String]
        @Option(help: "Validity in hours (default 168 = 7 days; renew well before).") var hours = 168.0
        @Option(help: "Output path prefix (default: the vehicle id).") var out: String?

        func run() async throws {
            let issued = try self.ca.load().issueVehicle(
                self.vehicle, regions: self.region, lifetime: self.hours * 3600)
            let out = self.out ?? self.vehicle
            try writePair(issued, to: out)
            try printIdentity(issued, path: out + ".pem")
        }
    }

    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a car's certificate signing request (`fleet-agent pki request`): OUT.pem, no key.",
            discussion: """
                The car keeps its key; the request proves it holds it. The vehicle and its regions are yours: \
                --vehicle and --region, or --cert to renew with an earlier certificate's, for the same key (the \
                request then proves it comes from the car). A request that names another vehicle is refused.
                """)
        @OptionGroup var ca: CAOptions
        @Option(help: "The car's certificate signing request (PEM).") var csr: String
        @Option(help: "The vehicle id (fleet://vehicle/ID); not with --cert.") var vehicle: String?
        @Option(help: "A region the car may serve (repeatable); not with --cert.") var region: [String] = []
        @Option(help: "Renew: take the vehicle and regions from this certificate (PEM; this CA's, valid now).")
        var cert: String?
        @Option(help: "Refuse to renew a certificate this revocation file names (tunnel.revocationFile).")
        var revocationFile: String?
        @Option(help: "Validity in hours (default 168 = 7 days; renew well before).") var hours = 168.0
        @Option(help: "Output path (default: the vehicle id + .pem, or --cert, replaced atomically).") var out: String?

        func run() async throws {
            let ca = try self.ca.load()
            let request = try readPEM(self.csr)
            let signed: (certificatePEM: String, certificate: Certificate)
            if let cert = self.cert {
                guard self.vehicle == nil, self.region.isEmpty else {
                    throw ValidationError(
                        "--cert names the vehicle and its regions: give it alone, or --vehicle and --region")
                }
                let earlier = try certificate(at: cert)
                let revocations = try loadRevocations(self.revocationFile)
                signed = try labelled("\(self.csr), \(cert)") {
                    try ca.signRenewal(
                        request: request, of: earlier, revocations: revocations, lifetime: self.hours * 3600)
                }
            } else {
                guard let vehicle = self.vehicle, !self.region.isEmpty else {
                    throw ValidationError("give --vehicle and at least one --region, or --cert")
                }
                signed = try labelled(self.csr) {
                    try ca.signVehicle(
                        request: request, vehicleID: vehicle, regions: self.region, lifetime: self.hours * 3600)
                }
            }
            let identity = try VehicleIdentity(signed.certificate)
            let out = self.out ?? self.cert ?? identity.vehicleID + ".pem"
            try atomicWrite(signed.certificatePEM, to: out, mode: 0o644)
            print(
                "\(out): vehicle \(identity.vehicleID), regions \(identity.regions.joined(separator: ",")), serial \(identity.serial), valid until \(identity.notValidAfter)"
            )
        }
    }

    struct IssueServer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-server",
            abstract: "Issue the gateway's tunnel certificate from the fleet CA: OUT.pem and OUT-key.pem.")
        @OptionGroup var ca: CAOptions
        @Option(help: "A DNS name or IP address cars dial (repeatable).") var name: [String]
        @Option(help: "Validity in days.") var days = 90
        @Option(help: "Output path prefix.") var out = "tunnel"

        func run() async throws {
            let issued = try self.ca.load().issueServer(names: self.name, lifetime: Double(self.days) * 86_400)
            try writePair(issued, to: self.out)
            print(
                "\(self.out).pem for \(self.name.joined(separator: ", ")), valid until \(issued.certificate.notValidAfter)"
            )
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Renew a vehicle certificate: same vehicle and regions, new key and serial, replaced atomically.")
        @OptionGroup var ca: CAOptions
        @Option(help: "The certificate to renew (PEM; this CA's, valid now).") var cert: String
        @Option(help: "Refuse to renew a certificate this revocation file names (tunnel.revocationFile).")
        var revocationFile: String?
        @Option(help: "Validity in hours (default 168 = 7 days).") var hours = 168.0
        @Option(help: "Output path prefix (default: the certificate's own, replacing it and its -key.pem).") var out:
            String?

        func run() async throws {
            let old = try certificate(at: self.cert)
            let revocations = try loadRevocations(self.revocationFile)
            let ca = try self.ca.load()
            let issued = try labelled(self.cert) {
                try ca.renew(old, revocations: revocations, lifetime: self.hours * 3600)
            }
            let out = self.out ?? (self.cert.hasSuffix(".pem") ? String(self.cert.dropLast(4)) : self.cert)
            try writePair(issued, to: out)
            try printIdentity(issued, path: out + ".pem")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append a revocation to the revocation file (the gateway re-reads it within seconds).")
        @Option(help: "The revocation file (tunnel.revocationFile).") var file: String
        @Option(help: "Revoke one certificate by serial (hex).") var serial: String?
        @Option(help: "Revoke a certificate file's serial.") var cert: String?
        @Option(help: "Revoke every certificate of a vehicle.") var vehicle: String?
        @Option(help: "Why (written as a comment).") var reason = ""

        func run() async throws {
            var lines: [String] = []
            if let serial = self.serial {
                guard let normalised = RevocationList.normalisedSerial(serial) else {
                    throw ValidationError("--serial: '\(serial)' is not hex")
                }
                lines.append("serial \(normalised)")
            }
            if let cert = self.cert {
                let identity = try VehicleIdentity(certificate(at: cert))
                lines.append("serial \(identity.serial)")
            }
            if let vehicle = self.vehicle {
                guard VehicleIdentity.isValidName(vehicle) else { throw ValidationError("--vehicle: not a vehicle id") }
                lines.append("vehicle \(vehicle)")
            }
            guard !lines.isEmpty else { throw ValidationError("give --serial, --cert or --vehicle") }
            let text = try RevocationList.append(lines, comment: self.reason, to: self.file)
            // Check the whole file still parses, as the gateway will.
            _ = try RevocationList.load(path: self.file, missingIsEmpty: false)
            print(text, terminator: "")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a certificate's vehicle, regions, serial and validity.")
        @Argument(help: "PEM certificate.") var cert: String

        func run() async throws {
            let certificate = try certificate(at: self.cert)
            print("subject:   \(certificate.subject)")
            print("issuer:    \(certificate.issuer)")
            print("serial:    \(VehicleIdentity.hex(certificate.serialNumber.bytes))")
            print("valid:     \(certificate.notValidBefore) … \(certificate.notValidAfter)")
            if let identity = try? VehicleIdentity(certificate) {
                print("vehicle:   \(identity.vehicleID)")
                print("regions:   \(identity.regions.joined(separator: ", "))")
            }
        }
    }
}

/// A PEM file's text; the error names the file and says what is wrong in an operator's words.
private func readPEM(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw PKIError(
            FileManager.default.fileExists(atPath: path) ? "\(path): cannot read it" : "\(path): no such file")
    }
    guard let text = String(data: data, encoding: .utf8), text.contains("-----BEGIN ") else {
        throw PKIError("\(path): not PEM text (a DER file? `openssl x509|req -inform DER -outform PEM` converts it)")
    }
    return text
}

/// The revocation file a renewal is checked against, when one is given (a missing file is an error).
private func loadRevocations(_ path: String?) throws -> RevocationList? {
    try path.map { try RevocationList.load(path: $0, missingIsEmpty: false) }
}

/// `body`'s ``PKIError`` prefixed with the file it is about.
private func labelled<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as PKIError { throw PKIError("\(path): \(error)") }
}

/// A PEM certificate file.
private func certificate(at path: String) throws -> Certificate {
    let text = try readPEM(path)
    do { return try FleetPKI.certificate(pem: text) } catch {
        throw PKIError("\(path): not a PEM certificate, or one cut short")
    }
}

/// Writes OUT.pem and OUT-key.pem (0600), each replaced atomically.
private func writePair(_ issued: FleetPKI.Issued, to prefix: String) throws {
    try atomicWrite(issued.privateKeyPEM, to: prefix + "-key.pem", mode: 0o600)
    try atomicWrite(issued.certificatePEM, to: prefix + ".pem", mode: 0o644)
}

private func atomicWrite(_ text: String, to path: String, mode: Int) throws {
    let temporary = path + ".tmp-\(getpid())"
    guard
        FileManager.default.createFile(
            atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    else { throw ValidationError("cannot write \(temporary)") }
    guard rename(temporary, path) == 0 else { throw ValidationError("cannot replace \(path)") }
}

private func printIdentity(_ issued: FleetPKI.Issued, path: String) throws {
    let identity = try VehicleIdentity(issued.certificate)
    print(
        "\(path): vehicle \(identity.vehicleID), regions \(identity.regions.joined(separator: ",")), serial \(identity.serial), valid until \(identity.notValidAfter)"
    )
}
