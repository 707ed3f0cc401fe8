import ArgumentParser
import FleetAgent
import Foundation

/// `fleet-agent pki request`: the car's key, made on the car, and its certificate signing request for
/// the fleet CA (`fleetgate pki sign`; docs/security.md).
struct PKICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki", abstract: "The car's key and certificate signing request.", subcommands: [Request.self])

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a certificate signing request for the car's key, making the key (mode 0600) if it does not exist.",
            discussion: """
                The key never leaves the car: the request goes to the fleet CA (`fleetgate pki sign --csr`), and \
                the certificate it returns goes beside the key (`--cert`, `--key` of `fleet-agent run`). \
                Run it again with the same key to renew.
                """)
        @Option(help: "The vehicle id (the request's common name; the CA checks it).") var vehicle: String
        @Option(help: "The car's private key (PEM P-256): read, or made here when missing.") var key: String
        @Option(help: "Where to write the request (PEM; default: the vehicle id + .csr).") var out: String?

        func run() async throws {
            let (request, made) = try VehicleKeyRequest.make(keyFile: self.key, vehicleID: self.vehicle)
            let out = self.out ?? self.vehicle + ".csr"
            guard FileManager.default.createFile(atPath: out, contents: Data(request.utf8)) else {
                throw ValidationError("cannot write \(out)")
            }
            print("\(out): request for vehicle \(self.vehicle) with \(made ? "a new key, " : "the key ")\(self.key)")
        }
    }
}
