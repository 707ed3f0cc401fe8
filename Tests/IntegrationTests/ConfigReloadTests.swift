import AsyncHTTPClient
import FleetConfiguration
import FleetGate
import FleetGeo
import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Testing

@Suite("Reloading the configuration file without a restart", .timeLimit(.minutes(1)))
struct ConfigReloadTests {
    @Test(
        "API keys, limits and log level swap on reload, not on a region reload; a broken file is refused with file:line:column and changes nothing"
    )
    func reload() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        let keys = dir.appendingPathComponent("keys").path
        func write(keys list: String, maxBody: String, level: String) throws {
            try list.write(toFile: keys, atomically: true, encoding: .utf8)
            try """
            listeners: {client: {port: 0}, tunnel: {port: 0}}
            admin: {port: 0}
            auth: {apiKeysFile: \(keys)}
            tunnel: {trustPollSeconds: 3600}
            limits: {maxBodyBytes: \(maxBody)}
            logging: {level: \(level)}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        }
        try write(keys: "sk-old\n", maxBody: "100000", level: "info")
        let level = LogLevelControl(.info)
        let gateway = try fileConfiguredGateway(file, label: "reload-test", logLevel: level)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await gateway.run() }
            let client = try await RecordingClient.connect(
                port: try await gateway.clientListener.boundAddress.get().port!)
            let admin = try await RecordingClient.connect(
                port: try await gateway.adminListener.boundAddress.get().port!)
            defer {
                client.close()
                admin.close()
            }
            func status(_ key: String) async throws -> Int { try await client.completionStatus(key: key) }
            func adminRequest(_ method: HTTPRequest.Method, _ path: String) async throws -> (Int, String) {
                var request = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: path)
                if method == .post { request.headerFields[.contentType] = "application/json" }  // the admin guard
                let result = try await admin.send(request, body: method == .post ? ByteBuffer() : nil).collect()
                return (result.response?.status.code ?? 0, result.body)
            }
            func reload() async throws -> (Int, String) { try await adminRequest(.post, "/admin/reload") }
            #expect(try await status("sk-old") != 401)
            #expect(try await status("sk-new") == 401)

            try write(keys: "sk-new\n", maxBody: "100000", level: "debug")
            let (ok, report) = try await reload()
            #expect(ok == 200, "\(report)")
            let oldKey = try await status("sk-old")
            #expect(oldKey == 401, "\(oldKey) after \(report)")
            #expect(try await status("sk-new") != 401)
            #expect(level.level == .debug)

            try write(keys: "sk-new\n", maxBody: "10", level: "debug")
            #expect(try await reload().0 == 200)
            #expect(try await status("sk-new") == 413)  // the new 10-byte body limit
            // /admin/config shows what runs, never a secret.
            let shown = try await adminRequest(.get, "/admin/config").1
            #expect(shown.contains("\"maxBodyBytes\":10") && shown.contains("\"apiKeys\":1"), "\(shown)")
            #expect(!shown.contains("sk-new") && !shown.contains(FleetFixture.testSecret))
            #expect(gateway.core.configuration.maxBodyBytes == 10)
            #expect(level.level == .debug)

            // /admin/regions/reload re-reads the map and the database, nothing else (helper-70: it applied
            // the whole file).
            try write(keys: "sk-new\n", maxBody: "100000", level: "info")
            let (regionsOnly, regions) = try await adminRequest(.post, "/admin/regions/reload")
            #expect(regionsOnly == 200 && regions.contains("\"version\""), "\(regions)")
            #expect(gateway.core.configuration.maxBodyBytes == 10)
            #expect(level.level == .debug)
            try write(keys: "sk-new\n", maxBody: "10", level: "debug")

            // A typo and a malformed value: refused, both reported with their positions, nothing changes.
            try write(keys: "sk-other\n", maxBody: "ten", level: "info")
            try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "logging:", with: "loging:")
                .write(toFile: file, atomically: true, encoding: .utf8)
            let (refused, reason) = try await reload()
            #expect(refused == 422)
            // The refusal shows on /metrics (and the alert FleetConfigReloadFailed), not only in a log line.
            #expect(try await adminRequest(.get, "/metrics").1.contains("fleet_config_last_reload_successful 0"))
            // A region reload that succeeds does not hide it: the broken file is still not applied (helper-73).
            #expect(try await adminRequest(.post, "/admin/regions/reload").0 == 200)
            #expect(try await adminRequest(.get, "/metrics").1.contains("fleet_config_last_reload_successful 0"))
            #expect(reason.contains("\(file):5:") && reason.contains("limits.maxBodyBytes"))
            #expect(reason.contains("\(file):6:1: key 'loging'"))
            #expect(gateway.core.configuration.maxBodyBytes == 10)
            #expect(try await status("sk-new") == 413)
            #expect(level.level == .debug)

            // Every key revoked (the file emptied, a comment left): every request is refused — an empty
            // key file switched authentication off.
            try write(keys: "# revoked\n", maxBody: "100000", level: "info")
            #expect(try await reload().0 == 200)
            #expect(try await status("sk-new") == 401)
            #expect(try await status("") == 401)
            try write(keys: "sk-back\n", maxBody: "100000", level: "info")
            #expect(try await reload().0 == 200)
            // The sample, not the HELP line (which reads "… 1 when the last reload …": this check could not fail).
            #expect(
                try await adminRequest(.get, "/metrics").1.split(separator: "\n").contains {
                    $0.hasPrefix("fleet_config_last_reload_successful 1")
                })
            #expect(try await status("sk-back") != 401)
            tasks.cancelAll()
        }
    }

    @Test(
        "A reload refuses what a restart would refuse: a map without a central or audit endpoint's region, on a map-only reload too (helper-101)"
    )
    func refusesWhatARestartWould() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        let map = dir.appendingPathComponent("regions.yaml").path
        let original = try String(contentsOf: ReloadTests.defaultYAML, encoding: .utf8)
        try original.write(toFile: map, atomically: true, encoding: .utf8)
        try """
        listeners: {client: {port: 0}, tunnel: {port: 0}}
        admin: {port: 0}
        geo: {regionsFile: \(map)}
        central: {endpoints: ["eu-north=http://127.0.0.1:9/v1"]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try fileConfiguredGateway(file, label: "restart-rules-test")
        // Its central endpoint's HTTP client is shut down whatever happens (its deinit traps otherwise).
        let result = Result { () throws in
            // A valid map of one region, without eu-north, where the central endpoint runs.
            let small = """
                version: small
                zones:
                  eu: {residency: strict, countries: [DE, FR]}
                regions:
                  eu-central: {zone: eu, countries: [DE, FR]}
                origins: {private: eu-central, unknown: eu-central, noDatabase: eu-central}

                """
            try small.write(toFile: map, atomically: true, encoding: .utf8)
            for regionsOnly in [true, false] {
                #expect(throws: ReloadError.self) { try gateway.reloader.reload(regionsOnly: regionsOnly) }
                do throws(ReloadError) {
                    _ = try gateway.reloader.reload(regionsOnly: regionsOnly)
                } catch {
                    #expect(
                        error.message.contains("key 'central.endpoints': 'eu-north': region is not in the region map"),
                        "\(error.message)")
                }
            }
            #expect(gateway.core.geo.current.map.version == "default-2026-11")
            // The map back: both reloads pass.
            try original.write(toFile: map, atomically: true, encoding: .utf8)
            #expect(try gateway.reloader.reload(regionsOnly: true).regionsVersion == "default-2026-11")
            #expect(try gateway.reloader.reload().regionsVersion == "default-2026-11")
            // A rule the gateway checks only before it binds (the trust rules): a reload that broke one
            // was taken, and the next start failed (helper-101: certificate authentication without its
            // certificate); a revocation file that is not there is one such.
            let config = try String(contentsOfFile: file, encoding: .utf8)
            try (config + "\ntunnel: {revocationFile: \(dir.path)/missing-revocations.txt}\n")
                .write(toFile: file, atomically: true, encoding: .utf8)
            do throws(ReloadError) {
                _ = try gateway.reloader.reload()
                Issue.record("a reload took a revocation file that is not there")
            } catch {
                #expect(
                    error.message.contains("key 'tunnel.revocationFile'")
                        && error.message.contains("a restart would refuse it"), "\(error.message)")
            }
        }
        try await gateway.core.httpClient?.shutdown()
        try result.get()
    }

    @Test("A refused reload names every error of the file at once, as config check does (helper-101: one round each)")
    func everyErrorAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        let good = "listeners: {client: {port: 0}, tunnel: {port: 0}}\nadmin: {port: 0}\n"
        try good.write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try fileConfiguredGateway(file, label: "every-error-test")
        // Two errors of the file itself (a type, a typo) and two of the rules read after it.
        for bad in [
            "limits: {maxBodyBytes: lots, maxBodyBytez: 5}\nlogging: {level: loud}\ndispatch: {maxAttempts: -4}\n",
            "logging: {level: loud}\ndispatch: {maxAttempts: -4}\n",
        ] {
            try (good + bad).write(toFile: file, atomically: true, encoding: .utf8)
            do throws(ReloadError) {
                _ = try gateway.reloader.reload()
                Issue.record("a reload took \(bad)")
            } catch {
                let lines = error.message.split(separator: "\n")
                let expected =
                    (bad.contains("lots")
                        ? [":3:24: key 'limits.maxBodyBytes'", ":3:30: key 'limits.maxBodyBytez'"] : [])
                    + ["key 'logging.level': 'loud'", "key 'dispatch.maxAttempts': '-4'"]
                for part in expected {
                    #expect(lines.filter { $0.contains(part) }.count == 1, "\(part) in \(error.message)")
                }
                #expect(lines.count == expected.count, "\(error.message)")
            }
        }
        #expect(gateway.core.configuration.logging.level == "info")
    }

    @Test(
        "A reload names the keys it put in effect and those kept for a restart by key, not group; affinity and cluster keys are restart-only"
    )
    func namesTheKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-named-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        let good = "listeners: {client: {port: 0}, tunnel: {port: 0}}\nadmin: {port: 0}\n"
        try good.write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try fileConfiguredGateway(file, label: "named-keys-test")
        try
            (good.replacingOccurrences(of: "admin: {port: 0}", with: "admin: {port: 0, allowedHosts: [gw.example]}")
            + "limits: {maxBodyBytes: 4096}\ndispatch: {maxAttempts: 2, affinity: false}\n"
            + "cluster: {forwardMarginMilliseconds: 50}\ngeo: {trustedProxies: [10.0.0.0/8]}\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let report = try gateway.reloader.reload()
        #expect(report.changed == ["dispatch.maxAttempts", "geo.trustedProxies", "limits.maxBodyBytes"])
        // helper-106: listed as taken while the start's list stayed in use.
        #expect(gateway.core.clientAddresses.isTrusted(try #require(IPAddress("10.1.2.3"))))
        #expect(
            Set(report.restartRequired)
                == ["admin.allowedHosts", "dispatch.affinity", "cluster.forwardMarginMilliseconds"])
        let running = gateway.core.configuration
        #expect(running.limits.maxBodyBytes == 4096 && running.dispatch.maxAttempts == 2)
        #expect(running.dispatch.affinity && running.admin.allowedHosts.isEmpty)
        #expect(running.cluster.forwardMarginMilliseconds != 50)
        // Nothing new: nothing changed, the restart still pending is named again.
        let again = try gateway.reloader.reload()
        #expect(again.changed.isEmpty && again.restartRequired.count == 3)
    }

    @Test("A reload installs the admin token file's new token, with nothing to restart; a short one refuses the reload")
    func adminTokenReload() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-admin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fleetgate.yaml").path
        let token = dir.appendingPathComponent("admin-token").path
        try "admin-token-0123456789\n".write(toFile: token, atomically: true, encoding: .utf8)
        try "listeners: {client: {port: 0}, tunnel: {port: 0}}\nadmin: {port: 0, tokenFile: \(token)}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try fileConfiguredGateway(file, label: "admin-token-test")
        #expect(try gateway.reloader.reload().restartRequired.isEmpty)
        try "admin-token-rotated-987654\n".write(toFile: token, atomically: true, encoding: .utf8)
        #expect(try gateway.reloader.reload().restartRequired.isEmpty)
        #expect(gateway.reloader.adminToken?.bytes == Array("admin-token-rotated-987654".utf8))
        // helper-73: a pending restart is a metric, not only a log line; there is none.
        func pending() -> Double? {
            var buffer: [UInt8] = []
            gateway.prometheus.emit(into: &buffer)
            return String(decoding: buffer, as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("fleet_config_restart_pending ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        #expect(pending() == 0)
        try "short\n".write(toFile: token, atomically: true, encoding: .utf8)
        #expect { try gateway.reloader.reload() } throws: { "\($0)".contains("admin.tokenFile") }
        #expect(gateway.reloader.adminToken?.bytes == Array("admin-token-rotated-987654".utf8))
    }

    @Test("A renewed certificate is served to the next TLS connection after a reload")
    func certificateRenewal() async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (renewedCert, renewedKey, renewedDir) = try await TLSTests.makeCertificate(days: 90)
        defer { try? FileManager.default.removeItem(at: renewedDir) }
        let oldCA = dir.appendingPathComponent("old-ca.pem").path
        try FileManager.default.copyItem(atPath: cert, toPath: oldCA)
        try await withFleet(configure: {
            $0.tls = .init(certificateChain: cert, privateKey: key)
            $0.tlsPort = 0
            // The files' own watch (CredentialFilesWatchTests) would swap them before the reload.
            $0.tunnel.trustPollInterval = .seconds(3600)
        }) { fleet in
            let port = try await #require(fleet.gateway.tlsListener).boundAddress.get().port!
            func verifies(with ca: String) async throws -> Bool { try await TLSTests.verifies(port: port, with: ca) }
            #expect(try await verifies(with: oldCA))
            // The operator replaces the files in place (as cert-manager or certbot do), then reloads.
            try FileManager.default.removeItem(atPath: cert)
            try FileManager.default.removeItem(atPath: key)
            try FileManager.default.copyItem(atPath: renewedCert, toPath: cert)
            try FileManager.default.copyItem(atPath: renewedKey, toPath: key)
            // The expiry metric is the served certificate's: the renewed file on disk does not move it until
            // the reload (helper-73: it read the file, and cleared the expiry alert before anything changed).
            func servedExpiry() async throws -> Int64? {
                let client = try await RecordingClient.connect(port: fleet.adminPort)
                defer { client.close() }
                let body = try await client.send(
                    HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
                ).collect().body
                return body.split(separator: "\n").first {
                    $0.hasPrefix(#"fleet_tls_certificate_expiry_timestamp_seconds{listener="tls"}"#)
                }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int64($0) }
            }
            let now = Int64(Date().timeIntervalSince1970)
            let before = try await servedExpiry()
            #expect(
                before.map { $0 < now + 2 * 86_400 } == true,
                "still the 1-day certificate: \(String(describing: before))")
            _ = try fleet.gateway.reloader.reload()
            let after = try await servedExpiry()
            #expect(after.map { $0 > now + 80 * 86_400 } == true, "the 90-day one: \(String(describing: after))")
            #expect(try await verifies(with: renewedCert))
            #expect(try await !verifies(with: oldCA))
            // A broken key file is refused; the renewed certificate stays in use.
            try "not a key".write(toFile: key, atomically: true, encoding: .utf8)
            #expect(throws: ReloadError.self) { try fleet.gateway.reloader.reload() }
            #expect(try await verifies(with: renewedCert))
        }
    }
}
