import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import NIOCore
import Testing

/// Issue #20: cars prove who they are with vehicle certificates on an mTLS tunnel; the gateway
/// takes the vehicle id and regions from the certificate, refuses forgeries, and closes a car the
/// revocation file names while it is connected.
@Suite("Vehicle certificates on the tunnel", .serialized, .timeLimit(.minutes(2)))
struct VehicleCertificateTests {
    /// A fleet CA, the gateway's tunnel certificate, and a revocation file, in a temporary directory.
    struct PKIFiles {
        let dir: String
        let ca: FleetPKI
        var caFile: String { self.dir + "/ca.pem" }
        var revocationFile: String { self.dir + "/revocations" }

        init() throws {
            self.dir =
                FileManager.default.temporaryDirectory.appendingPathComponent("fleet-pki-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: self.dir, withIntermediateDirectories: true)
            let ca = try FleetPKI.makeCA(name: "test fleet CA")
            try ca.certificatePEM.write(toFile: self.dir + "/ca.pem", atomically: true, encoding: .utf8)
            self.ca = try FleetPKI(certificatePEM: ca.certificatePEM, privateKeyPEM: ca.privateKeyPEM)
            let server = try self.ca.issueServer(names: ["127.0.0.1", "localhost"])
            try server.certificatePEM.write(toFile: self.dir + "/tunnel.pem", atomically: true, encoding: .utf8)
            try server.privateKeyPEM.write(toFile: self.dir + "/tunnel-key.pem", atomically: true, encoding: .utf8)
            try "# revoked vehicle certificates\n".write(toFile: self.revocationFile, atomically: true, encoding: .utf8)
        }

        /// Writes a vehicle certificate (from `issuer`, by default the fleet CA) and returns the car's TLS settings.
        func vehicle(_ id: String, regions: [String], issuer: FleetPKI? = nil) throws -> (
            AgentConfiguration.TunnelTLS, String
        ) {
            let issued = try (issuer ?? self.ca).issueVehicle(id, regions: regions)
            let prefix = self.dir + "/\(id)-\(UUID().uuidString.prefix(6))"
            try issued.certificatePEM.write(toFile: prefix + ".pem", atomically: true, encoding: .utf8)
            try issued.privateKeyPEM.write(toFile: prefix + "-key.pem", atomically: true, encoding: .utf8)
            let tls = AgentConfiguration.TunnelTLS(
                caFile: self.caFile, serverHostname: "localhost", certificateFile: prefix + ".pem",
                privateKeyFile: prefix + "-key.pem")
            return (tls, try VehicleIdentity(issued.certificate).serial)
        }

        func configure(_ configuration: inout GatewayConfiguration) {
            configuration.tunnel.auth = .certificate
            configuration.tunnel.caFile = self.caFile
            configuration.tunnel.revocationFile = self.revocationFile
            configuration.tunnel.trustPollInterval = .milliseconds(100)
            configuration.listeners.tunnel.files = .init(
                certificateChain: self.dir + "/tunnel.pem", privateKey: self.dir + "/tunnel-key.pem")
        }
    }

    static func spec(_ id: String, region: String = "eu-central", tls: AgentConfiguration.TunnelTLS) -> CarSpec {
        var spec = CarSpec(id, region: region)
        spec.tls = tls
        return spec
    }

    @Test(
        "A car with a fleet certificate serves; forged, mismatched and out-of-zone cars never register; a revoked car is told quarantine and closed without a restart"
    )
    func lifecycle() async throws {
        let pki = try PKIFiles()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        try await withFleet(configure: pki.configure) { fleet in
            // 1. A genuine car: registered with the certificate's regions, and it serves over mTLS.
            let (goodTLS, goodSerial) = try pki.vehicle("car-good", regions: ["eu-central"])
            let good = try await fleet.startCar(Self.spec("car-good", tls: goodTLS))
            let result = try await Subprocess.run(
                "curl",
                [
                    "-s", "--max-time", "10", "-H", "content-type: application/json", "-d",
                    #"{"model":"fleet-8b","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#,
                    fleet.baseURL + "/v1/chat/completions",
                ])
            #expect(result.stdout.contains("chat.completion"), "\(result.stdout)")

            // 2. A certificate from another CA (a forgery): the handshake fails; never registered.
            let rogueCA = try FleetPKI.makeCA(name: "rogue")
            let rogue = try FleetPKI(certificatePEM: rogueCA.certificatePEM, privateKeyPEM: rogueCA.privateKeyPEM)
            let (forgedTLS, _) = try pki.vehicle("car-forged", regions: ["eu-central"], issuer: rogue)
            await #expect(throws: (any Error).self) {
                try await fleet.startCar(Self.spec("car-forged", tls: forgedTLS), timeout: .seconds(2))
            }
            // 3. A genuine certificate whose hello claims another vehicle: refused.
            let (otherTLS, _) = try pki.vehicle("car-other", regions: ["eu-central"])
            await #expect(throws: (any Error).self) {
                try await fleet.startCar(Self.spec("car-impostor", tls: otherTLS), timeout: .seconds(2))
            }
            // 4. A car cannot declare itself into a zone its certificate does not name.
            let (usTLS, _) = try pki.vehicle("car-us", regions: ["us-east"])
            await #expect(throws: (any Error).self) {
                try await fleet.startCar(Self.spec("car-us", region: "eu-central", tls: usTLS), timeout: .seconds(2))
            }
            #expect(fleet.gateway.core.registry.all().map(\.descriptor.vehicleID) == ["car-good"])

            // 5. Revoke the good car's serial: within the poll interval it is told `quarantine`,
            // closed, and does not dial again.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: pki.revocationFile))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("serial \(goodSerial)  # test\n".utf8))
            try handle.close()
            try await waitUntil(timeout: .seconds(5), "revoked car gone") {
                !fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "car-good" }
                    && !good.car.tunnel.isConnected
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(good.car.tunnel.connectionCount == 1, "a quarantined car must not dial again")
            #expect(!good.car.tunnel.isConnected)
        }
    }

    @Test("A car that made its own key (fleet-agent pki request) serves with the certificate the CA signed for it")
    func ownKey() async throws {
        let pki = try PKIFiles()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        let keyFile = pki.dir + "/car-own-key.pem"
        let first = try VehicleKeyRequest.make(keyFile: keyFile, vehicleID: "car-own")
        #expect(first.madeKey)
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)
        // Renewal asks again with the same key.
        let again = try VehicleKeyRequest.make(keyFile: keyFile, vehicleID: "car-own")
        #expect(!again.madeKey)
        let signed = try pki.ca.signVehicle(request: again.requestPEM, vehicleID: "car-own", regions: ["eu-central"])
        try signed.certificatePEM.write(toFile: pki.dir + "/car-own.pem", atomically: true, encoding: .utf8)
        let tls = AgentConfiguration.TunnelTLS(
            caFile: pki.caFile, serverHostname: "localhost", certificateFile: pki.dir + "/car-own.pem",
            privateKeyFile: keyFile)
        try await withFleet(configure: pki.configure) { fleet in
            _ = try await fleet.startCar(Self.spec("car-own", tls: tls))
            let result = try await Subprocess.run(
                "curl",
                [
                    "-s", "--max-time", "10", "-H", "content-type: application/json", "-d",
                    #"{"model":"fleet-8b","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#,
                    fleet.baseURL + "/v1/chat/completions", "-D", "-",
                ])
            #expect(result.stdout.contains("chat.completion"), "\(result.stdout)")
            #expect(fleet.gateway.core.registry.all().map(\.descriptor.vehicleID) == ["car-own"])
        }
    }

    @Test(
        "Renewal and CA rotation need no restart: an agent moves to a new tunnel with its renewed certificate; the gateway takes a new CA from its CA file"
    )
    func renewalAndRotation() async throws {
        let pki = try PKIFiles()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        try await withFleet(configure: pki.configure) { fleet in
            var (tls, firstSerial) = try pki.vehicle("car-renew", regions: ["eu-central"])
            tls.pollInterval = .milliseconds(100)
            let car = try await fleet.startCar(Self.spec("car-renew", tls: tls))
            // A key file gone for a while (being replaced, or deleted by mistake) keeps the tunnel.
            let files = [tls.privateKeyFile!, tls.certificateFile!]
            let modified = try files.map { try FileManager.default.attributesOfItem(atPath: $0)[.modificationDate]! }
            try FileManager.default.removeItem(atPath: tls.privateKeyFile!)
            try await Task.sleep(for: .milliseconds(600))
            #expect(car.car.tunnel.isConnected, "the tunnel closed for a missing key file")
            #expect(
                fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "car-renew" && !$0.draining })
            // Renew in place (as `fleetgate pki renew` does): the agent dials again with the new certificate.
            // The files keep their modification times (as `cp -p` or `rsync -t` would): the agent reads
            // their contents, not their times.
            let renewed = try pki.ca.renew(FleetPKI.certificate(file: tls.certificateFile!))
            for (file, (pem, time)) in zip(files, zip([renewed.privateKeyPEM, renewed.certificatePEM], modified)) {
                try pem.write(toFile: file, atomically: true, encoding: .utf8)
                try FileManager.default.setAttributes([.modificationDate: time], ofItemAtPath: file)
            }
            try await waitUntil(timeout: .seconds(10), "the car on a new tunnel") {
                car.car.tunnel.connectionCount >= 2
                    && fleet.gateway.core.registry.all().contains {
                        $0.descriptor.vehicleID == "car-renew" && !$0.draining
                    }
            }
            // Revoking the old serial does not touch the renewed car.
            try "serial \(firstSerial)\n".write(toFile: pki.revocationFile, atomically: true, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(500))
            #expect(fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "car-renew" })

            // A second CA: its cars are refused until the gateway's CA file names it, then accepted.
            let nextIssued = try FleetPKI.makeCA(name: "next fleet CA")
            let next = try FleetPKI(certificatePEM: nextIssued.certificatePEM, privateKeyPEM: nextIssued.privateKeyPEM)
            let (nextTLS, _) = try pki.vehicle("car-next", regions: ["eu-central"], issuer: next)
            await #expect(throws: (any Error).self) {
                try await fleet.startCar(Self.spec("car-next", tls: nextTLS), timeout: .seconds(1))
            }
            let bundle = try String(contentsOfFile: pki.caFile, encoding: .utf8) + nextIssued.certificatePEM
            try bundle.write(toFile: pki.caFile, atomically: true, encoding: .utf8)
            try await waitUntil(timeout: .seconds(10), "the new CA's car registered") {
                fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "car-next" && !$0.draining }
            }
        }
    }
}
