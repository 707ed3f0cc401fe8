import FleetConfiguration
import FleetGate
import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Testing

/// Session 31: a certificate or key file rewritten in place (a Kubernetes Secret, cert-manager,
/// certbot) was served only after SIGHUP, `POST /admin/reload` or a restart — nothing else reloaded
/// it, and a renewed certificate's predecessor expired in front of every client.
@Suite("Credential files rewritten in place", .timeLimit(.minutes(1)))
struct CredentialFilesWatchTests {
    /// Polls `condition` every 100 ms for up to 10 s.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    @Test(
        "A Secret's renewed certificate is served to new connections without a reload; one renewed before its key waits for the key"
    )
    func certificates() async throws {
        let (cert1, key1, dir1) = try await TLSTests.makeCertificate()
        let (cert2, key2, dir2) = try await TLSTests.makeCertificate(days: 90)
        let (cert3, key3, dir3) = try await TLSTests.makeCertificate(days: 30)
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        defer { for dir in [dir1, dir2, dir3, mount] { try? FileManager.default.removeItem(at: dir) } }
        let files = FileManager.default
        // A mounted Secret as the kubelet lays it out: `tls.crt` → `..data/tls.crt`, and `..data` → the
        // current version's directory, swapped by one rename.
        func publish(_ cert: String, _ key: String, version: String) throws {
            let directory = mount.appendingPathComponent("..\(version)")
            try files.createDirectory(at: directory, withIntermediateDirectories: true)
            try files.copyItem(atPath: cert, toPath: directory.appendingPathComponent("tls.crt").path)
            try files.copyItem(atPath: key, toPath: directory.appendingPathComponent("tls.key").path)
            let link = mount.appendingPathComponent("..data_tmp").path
            try files.createSymbolicLink(atPath: link, withDestinationPath: "..\(version)")
            #expect(rename(link, mount.appendingPathComponent("..data").path) == 0)
        }
        try publish(cert1, key1, version: "v1")
        for name in ["tls.crt", "tls.key"] {
            try files.createSymbolicLink(
                atPath: mount.appendingPathComponent(name).path, withDestinationPath: "..data/\(name)")
        }
        try await withFleet(configure: {
            $0.tls = .init(
                certificateChain: mount.appendingPathComponent("tls.crt").path,
                privateKey: mount.appendingPathComponent("tls.key").path)
            $0.tlsPort = 0
            $0.tunnel.trustPollInterval = .milliseconds(100)
        }) { fleet in
            let port = try await #require(fleet.gateway.tlsListener).boundAddress.get().port!
            func verifies(with ca: String) async throws -> Bool { try await TLSTests.verifies(port: port, with: ca) }
            #expect(try await verifies(with: cert1))
            try publish(cert2, key2, version: "v2")
            #expect(try await Self.eventually { try await verifies(with: cert2) }, "the renewed pair is served")
            #expect(try await !verifies(with: cert1))

            // Renewed in place one file at a time: the certificate alone does not match the running key,
            // so the running pair stays; the key's change then loads the new pair.
            let current = mount.appendingPathComponent("..data")
            try Data(contentsOf: URL(fileURLWithPath: cert3))
                .write(to: current.appendingPathComponent("tls.crt"), options: .atomic)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await verifies(with: cert2), "a certificate without its key is not served")
            try Data(contentsOf: URL(fileURLWithPath: key3))
                .write(to: current.appendingPathComponent("tls.key"), options: .atomic)
            #expect(try await Self.eventually { try await verifies(with: cert3) }, "the key completes the pair")
        }
    }

    @Test(
        "A rewritten API key file swaps the keys without a reload, and nothing else; an empty one waits; one held back by a broken fleetgate.yaml lands when it is mended"
    )
    func apiKeys() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        // Mounted as a Secret's file is: a link into `..data` (helper-83: the empty-file check read the link).
        let keys = dir.appendingPathComponent("api-keys").path
        let target = dir.appendingPathComponent("..data/api-keys").path
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("..data"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: keys, withDestinationPath: "..data/api-keys")
        func write(maxBody: Int, broken: Bool = false) throws {
            try """
            listeners: {client: {port: 0}, tunnel: {port: 0}}
            admin: {port: 0}
            auth: {apiKeysFile: \(keys)}
            tunnel: {trustPollSeconds: 0.1}
            limits: {maxBodyBytes: \(maxBody)}
            """.appending(broken ? "\nloging: {level: info}\n" : "").write(
                toFile: file, atomically: true, encoding: .utf8)
        }
        try "sk-old\n".write(toFile: target, atomically: true, encoding: .utf8)
        try write(maxBody: 100_000)
        let gateway = try fileConfiguredGateway(file, label: "keys-watch-test")
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await gateway.run() }
            let client = try await RecordingClient.connect(
                port: try await gateway.clientListener.boundAddress.get().port!)
            defer { client.close() }
            func status(_ key: String) async throws -> Int { try await client.completionStatus(key: key) }
            #expect(try await status("sk-old") != 401)
            #expect(try await status("sk-new") == 401)
            // An edit of the configuration file waits for a reload: the key file's change applies only keys.
            try write(maxBody: 10)
            try "sk-new\n".write(toFile: target, atomically: true, encoding: .utf8)
            #expect(try await Self.eventually { try await status("sk-new") != 401 }, "the new key is accepted")
            #expect(try await status("sk-old") == 401)
            #expect(gateway.core.configuration.maxBodyBytes == 100_000)

            // helper-82: a writer that truncates and then writes left the file empty for a moment, and the
            // watch refused every client. An empty file now waits for its content.
            try "".write(toFile: target, atomically: false, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await status("sk-new") != 401, "an empty key file is not applied by the watch")
            try "sk-newer\n".write(toFile: target, atomically: false, encoding: .utf8)
            #expect(try await Self.eventually { try await status("sk-newer") != 401 })

            // helper-82: a rotation held back by a fleetgate.yaml that does not load stayed stale after the
            // YAML was mended, and the refusal was only a log line.
            let admin = try await RecordingClient.connect(
                port: try await gateway.adminListener.boundAddress.get().port!)
            defer { admin.close() }
            func reloadGauge() async throws -> Bool {
                let body = try await admin.send(
                    HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
                ).collect().body
                // The sample, not the HELP line (which reads "… 1 when the last reload …").
                return body.split(separator: "\n").contains { $0.hasPrefix("fleet_config_last_reload_successful 1") }
            }
            try write(maxBody: 10, broken: true)
            try "sk-last\n".write(toFile: target, atomically: true, encoding: .utf8)
            #expect(try await Self.eventually { try await !reloadGauge() }, "the refusal shows on /metrics")
            #expect(try await status("sk-newer") != 401, "held back: the running keys stay")
            try write(maxBody: 10)
            #expect(try await Self.eventually { try await status("sk-last") != 401 }, "lands once the YAML loads")
            #expect(try await status("sk-newer") == 401)
            #expect(try await Self.eventually { try await reloadGauge() })
            tasks.cancelAll()
        }
    }

    @Test(
        "A rotated admin token replaces the old one without a restart and ends its dashboard sessions; a short one is refused and shows on /metrics"
    )
    func adminToken() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-admin-\(UUID().uuidString)")
        try "admin-token-0123456789abcdef\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withFleet(configure: {
            $0.admin.tokenFile = file.path
            $0.tunnel.trustPollInterval = .milliseconds(100)
        }) { fleet in
            func get(_ path: String, token: String? = nil, cookie: String? = nil) async throws
                -> (status: Int, setCookie: String?, body: String)
            {
                let client = try await RecordingClient.connect(port: fleet.adminPort)
                defer { client.close() }
                var request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: path)
                if let token { request.headerFields[.authorization] = "Bearer \(token)" }
                if let cookie { request.headerFields[.cookie] = cookie }
                let result = try await client.send(request, body: nil).collect()
                return (result.response?.status.code ?? 0, result.response?.headerFields[.setCookie], result.body)
            }
            let old = "admin-token-0123456789abcdef"
            let new = "admin-token-rotated-fedcba9876"
            #expect(try await get("/admin/cars", token: old).status == 200)
            let login = try await get("/dashboard/login?token=\(old)")
            let cookie = String(try #require(login.setCookie).split(separator: ";")[0])
            #expect(try await get("/admin/cars", cookie: cookie).status == 200)

            try "\(new)\n".write(to: file, atomically: true, encoding: .utf8)
            #expect(try await Self.eventually { try await get("/admin/cars", token: new).status == 200 })
            #expect(try await get("/admin/cars", token: old).status == 401, "the leaked token no longer works")
            #expect(try await get("/admin/cars", cookie: cookie).status == 401, "nor its dashboard session")
            #expect(try await get("/dashboard/login?token=\(new)").status == 303)

            // Too short to be a token: refused, the running one stays, and the refusal is on /metrics.
            try "short\n".write(to: file, atomically: true, encoding: .utf8)
            func reloadGauge() async throws -> Double? {
                // The sample, not the HELP line.
                try await get("/metrics").body.split(separator: "\n")
                    .first { $0.hasPrefix("fleet_config_last_reload_successful ") }
                    .flatMap { Double($0.split(separator: " ")[1]) }
            }
            #expect(try await Self.eventually { try await reloadGauge() == 0 })
            #expect(try await get("/admin/cars", token: new).status == 200)
            #expect(try await get("/admin/cars", token: "short").status == 401)
        }
    }

    @Test(
        "A GeoIP database replaced by geoipupdate is used without a reload; a database without countries is refused and shows on /metrics"
    )
    func geoIPDatabase() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../FleetGeoTests/Fixtures").standardized
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-geo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("GeoLite2-Country.mmdb")
        /// As geoipupdate writes it: a new file renamed over the old one.
        func replace(with name: String) throws {
            let next = dir.appendingPathComponent("next.mmdb")
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: next)
            try #require(rename(next.path, file.path) == 0, "rename: errno \(errno)")
        }
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("GeoIP2-Country-Test.mmdb"), to: file)
        try await withFleet(configure: {
            $0.geo.databaseFile = file.path
            $0.tunnel.trustPollInterval = .milliseconds(100)
        }) { fleet in
            func get(_ path: String) async throws -> String {
                let client = try await RecordingClient.connect(port: fleet.adminPort)
                defer { client.close() }
                let request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: path)
                return try await client.send(request, body: nil).collect().body
            }
            // The test databases share one build time: their types tell them apart.
            #expect(try await get("/admin/regions").contains(#""type":"GeoIP2-Country""#))
            try replace(with: "GeoIP2-City-Test.mmdb")
            #expect(try await Self.eventually { try await get("/admin/regions").contains(#""type":"GeoIP2-City""#) })
            // Another edition written over it: refused, the running database stays, the refusal on /metrics.
            try replace(with: "MaxMind-DB-test-ipv4-24.mmdb")
            #expect(
                try await Self.eventually {
                    try await get("/metrics").contains("\nfleet_config_last_reload_successful 0")
                })
            #expect(try await get("/admin/regions").contains(#""type":"GeoIP2-City""#))
        }
    }
}
