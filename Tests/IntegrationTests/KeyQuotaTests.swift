import Crypto
import FleetGate
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Prometheus
import Testing

/// Issue #18 deliverable 3: application keys with quotas — the pure rules first, then one socket test.
@Suite("Application keys with quotas", .timeLimit(.minutes(2)))
struct KeyQuotaTests {
    static func sha(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test("A token bucket refills at its rate and says how long to wait")
    func bucket() {
        var bucket = TokenBucket(capacity: 2, rate: 1, now: 0)
        #expect(bucket.take(1, now: 0) == nil && bucket.take(1, now: 0) == nil)
        #expect(bucket.take(1, now: 0) == 1)
        #expect(bucket.take(1, now: 0.5) == 0.5)
        #expect(bucket.take(1, now: 1) == nil)
        bucket.charge(5, now: 1)
        #expect(bucket.waitUntilPositive(now: 1)! > 4.9)
        #expect(bucket.waitUntilPositive(now: 10) == nil)
    }

    @Test("Models, requests/s, tokens/min and concurrent streams, with an injected clock")
    func limiter() throws {
        let policies = try KeyFile.parse(
            yaml: """
                keys:
                  - name: team-a
                    sha256: \(Self.sha("a"))
                    models: [fleet-8b]
                    requestsPerSecond: 1
                    burst: 2
                    tokensPerMinute: 600
                    concurrentStreams: 2
                """, file: "keys.yaml")
        let a = Array(SHA256.hash(data: Data("a".utf8)))
        var limiter = KeyLimiter(policies: policies, now: 0)
        #expect(
            limiter.admit(keyHash: Array(SHA256.hash(data: Data("b".utf8))), model: "fleet-8b", now: 0) == .unknownKey)
        #expect(limiter.admit(keyHash: a, model: "other", now: 0) == .modelNotAllowed(name: "team-a"))
        guard case .admitted = limiter.admit(keyHash: a, model: "fleet-8b", now: 0) else { throw Failure() }
        guard case .admitted = limiter.admit(keyHash: a, model: "fleet-8b", now: 0) else { throw Failure() }
        #expect(
            limiter.admit(keyHash: a, model: "fleet-8b", now: 0)
                == .limited(name: "team-a", reason: .streams, retryAfter: 1))
        limiter.finish(keyHash: a, tokens: 0, now: 0)
        #expect(
            limiter.admit(keyHash: a, model: "fleet-8b", now: 0)
                == .limited(name: "team-a", reason: .requests, retryAfter: 1))
        guard case .admitted = limiter.admit(keyHash: a, model: "fleet-8b", now: 1) else { throw Failure() }
        limiter.finish(keyHash: a, tokens: 1_200, now: 1)  // 600 over the minute's 600: 60 s to refill
        limiter.finish(keyHash: a, tokens: 0, now: 1)
        #expect(
            limiter.admit(keyHash: a, model: "fleet-8b", now: 2)
                == .limited(name: "team-a", reason: .tokens, retryAfter: 60))
        guard case .admitted = limiter.admit(keyHash: a, model: "fleet-8b", now: 62) else { throw Failure() }
        // A reload keeps a staying key's state (its open streams) and drops a removed one.
        limiter.replace(policies: policies, now: 62)
        guard case .admitted = limiter.admit(keyHash: a, model: "fleet-8b", now: 62) else { throw Failure() }
        #expect(
            limiter.admit(keyHash: a, model: "fleet-8b", now: 62)
                == .limited(name: "team-a", reason: .streams, retryAfter: 1))
        limiter.replace(policies: [], now: 62)
        #expect(limiter.admit(keyHash: a, model: "fleet-8b", now: 100) == .unknownKey)
    }

    @Test("A bad key file names file, line, key and value")
    func badFile() {
        #expect {
            try KeyFile.parse(
                yaml: "keys:\n  - name: 'a b'\n    sha256: xyz\n    rate: 3\n", file: "k.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("k.yaml:2:") && text.contains("keys[0].name") && text.contains("'xyz'")
                && text.contains("keys[0].rate")
        }
        // A key written twice is a YAML error at the second, with no text of the file.
        #expect {
            try KeyFile.parse(yaml: "keys:\n  - name: a\n    name: b\n", file: "k.yaml")
        } throws: { error in
            "\(error)" == "k.yaml:3:5: not valid YAML: key 'name' appears twice in one mapping; first at line 2"
        }
    }

    @Test("Over the limit: 429 rate_limit_exceeded with Retry-After; the file reloads without a restart")
    func rateLimitedOverSockets() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try "keys:\n  - name: slow\n    sha256: \(Self.sha("sk-slow"))\n    requestsPerSecond: 0.01\n    burst: 1\n"
            .write(to: file, atomically: true, encoding: .utf8)
        try await withFleet(cars: [CarSpec("car", slowdown: 0.05)], configure: { $0.appKeysFile = file.path }) {
            fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func post(_ key: String) async throws -> (HTTPResponse?, String) {
                var headers = HTTPFields()
                headers[.authorization] = "Bearer \(key)"
                let result = try await client.post(
                    "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 2), headers: headers
                ).collect()
                return (result.response, result.body)
            }
            #expect(try await post("sk-slow").0?.status == .ok)
            let (limited, body) = try await post("sk-slow")
            #expect(limited?.status.code == 429 && body.contains("rate_limit_exceeded"))
            #expect(limited?.headerFields[.retryAfter].flatMap(Int.init).map { $0 >= 1 } == true)
            #expect(try await post("sk-new").0?.status.code == 401)
            try "keys:\n  - name: new\n    sha256: \(Self.sha("sk-new"))\n".write(
                to: file, atomically: true, encoding: .utf8)
            let reload = try await Subprocess.run(
                "curl",
                [
                    "-s", "-X", "POST", "-H", "content-type: application/json",
                    "http://127.0.0.1:\(fleet.adminPort)/admin/keys/reload",
                ])
            #expect(reload.stdout == "{\"keys\":1}")
            let afterReload = try await post("sk-new")
            #expect(afterReload.0?.status == .ok, "\(afterReload.1)")
            let metrics = String(decoding: fleet.gateway.prometheus.emitToBuffer(), as: UTF8.self)
            #expect(metrics.contains("fleet_key_requests_total{key=\"slow\",result=\"requests_per_second\"} 1"))

            // A key file that does not load is refused, and says so on /metrics as every other refused
            // reload does (fleet_config_last_reload_successful 0: the alert FleetConfigReloadFailed).
            func reloadGauge() -> Bool {
                String(decoding: fleet.gateway.prometheus.emitToBuffer(), as: UTF8.self).split(separator: "\n")
                    .contains { $0.hasPrefix("fleet_config_last_reload_successful 1") }
            }
            func reloadKeys() async throws -> String {
                try await Subprocess.run(
                    "curl",
                    [
                        "-s", "-X", "POST", "-H", "content-type: application/json",
                        "http://127.0.0.1:\(fleet.adminPort)/admin/keys/reload",
                    ]
                ).stdout
            }
            #expect(reloadGauge())
            try "keys:\n  - name: broken\n    sha256: not-a-digest\n".write(to: file, atomically: true, encoding: .utf8)
            let refused = try await reloadKeys()
            #expect(refused.contains("invalid_key_file"), "\(refused)")
            #expect(!reloadGauge(), "the refusal shows on /metrics")
            // A whole reload does not read the application key file: the refusal stands (helper-86).
            let whole = try await Subprocess.run(
                "curl",
                [
                    "-s", "-X", "POST", "-H", "content-type: application/json",
                    "http://127.0.0.1:\(fleet.adminPort)/admin/reload",
                ]
            ).stdout
            #expect(whole.contains("restartRequired") && !whole.contains("error"), "\(whole)")
            #expect(!reloadGauge(), "a whole reload leaves the key file's refusal on /metrics")
            #expect(try await post("sk-new").0?.status == .ok, "the running keys stay")
            try "keys:\n  - name: new\n    sha256: \(Self.sha("sk-new"))\n".write(
                to: file, atomically: true, encoding: .utf8)
            #expect(try await reloadKeys() == "{\"keys\":1}")
            #expect(reloadGauge())
        }
    }

    @Test("A key limited to some models lists and retrieves only those")
    func modelsOfAKey() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        keys:
          - name: small
            sha256: \(Self.sha("sk-small"))
            models: [fleet-3b]
          - name: any
            sha256: \(Self.sha("sk-any"))
        """.write(to: file, atomically: true, encoding: .utf8)
        try await withFleet(
            cars: [CarSpec("a", hardware: .hw3, slowdown: 0.1), CarSpec("b", hardware: .ai5, slowdown: 0.1)],
            configure: { $0.appKeysFile = file.path }
        ) { fleet in
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            func get(_ path: String, _ authorization: String) async throws -> (Int, String) {
                var request = HTTPRequest(method: .get, scheme: "http", authority: "x", path: path)
                request.headerFields[.authorization] = authorization
                let result = try await client.send(request, body: nil).collect()
                return (result.response?.status.code ?? 0, result.body)
            }
            func ids(_ body: String) throws -> Set<String> {
                Set(try JSONDecoder().decode(ModelList.self, from: Data(body.utf8)).data.map(\.id))
            }
            // The scheme in any case (RFC 9110 §11.1).
            #expect(try ids(try await get("/v1/models", "bearer sk-small").1) == ["fleet-3b"])
            #expect(try ids(try await get("/v1/models", "Bearer sk-any").1) == ["fleet-3b", "fleet-8b"])
            #expect(try await get("/v1/models/fleet-3b", "Bearer sk-small").0 == 200)
            #expect(try await get("/v1/models/fleet-8b", "Bearer sk-small").0 == 404)
            #expect(try await get("/v1/models/fleet-8b", "Bearer sk-any").0 == 200)
        }
    }

    struct Failure: Error {}
}
