import FleetGate
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// deploy/'s dashboards and alerts query only metrics the gateway exports, from its start.
@Suite("Metrics of deploy/", .timeLimit(.minutes(2)))
struct DeployMetricsTests {
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy").standardized

    /// Metric names in PromQL text: ours (`fleet_`) and the OpenTelemetry ones (`gen_ai_`, `http_server_`);
    /// histogram and summary series map to their family. (Prometheus's own `up` is not the gateway's.)
    static func queried(_ text: String) -> Set<String> {
        // A name followed by a matcher (`=`, `!=`, `=~`, `!~`; not `==`) is a label, not a metric.
        let names = text.matches(of: /\b((?:fleet|gen_ai|http_server)_[a-z0-9_]+)\b(?!\s*(?:!=|=~|!~|=(?!=)))/).map {
            String($0.output.1)
        }
        return Set(
            names.map { name in
                for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) {
                    return String(name.dropLast(suffix.count))
                }
                return name
            })
    }

    /// The families `# TYPE` announces in a Prometheus text exposition.
    static func families(_ exposition: String) -> Set<String> {
        Set(
            exposition.split(separator: "\n").compactMap { line in
                line.hasPrefix("# TYPE ") ? line.split(separator: " ").dropFirst(2).first.map(String.init) : nil
            })
    }

    static func metrics(_ fleet: FleetFixture) async throws -> String {
        let client = try await RecordingClient.connect(port: fleet.adminPort)
        defer { client.close() }
        return try await client.send(
            HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
        ).collect().body
    }

    @Test("Every metric a rule or panel queries is in /metrics before any request; GenAI and fleet_cars count one")
    func queriedMetricsAreExported() async throws {
        let files = ["prometheus/fleetgate-rules.yml", "grafana/fleetgate.json"]
        let texts = try files.map { try String(contentsOf: Self.deploy.appendingPathComponent($0), encoding: .utf8) }
        let queried = texts.reduce(into: Set<String>()) { $0.formUnion(Self.queried($1)) }
        #expect(queried.count >= 15, "the rules and the dashboard query \(queried.sorted())")

        // A central endpoint (nothing listens there: out of rotation) for the central families, which a
        // gateway without central capacity does not export.
        try await withFleet(
            cars: [CarSpec("car-a", slowdown: 0.1)],
            configure: { $0.central.endpoints = [.init(region: "eu-central", baseURL: "http://127.0.0.1:1/v1")] }
        ) { fleet in
            // Before any request: every family is registered.
            let before = Self.families(try await Self.metrics(fleet))
            #expect(queried.subtracting(before).isEmpty, "not exported: \(queried.subtracting(before).sorted())")

            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let result = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 8)
            ).collect()
            #expect(result.response?.status == .ok)

            let after = try await Self.metrics(fleet)
            #expect(
                after.contains(
                    #"fleet_cars{region="eu-central",zone="eu",state="serving",plugged="true"} 1"#))
            #expect(after.contains(#"fleet_cars{region="gb",zone="gb",state="serving",plugged="true"} 0"#))
            let ttftCount = after.split(separator: "\n").first {
                $0.hasPrefix("gen_ai_server_time_to_first_token_seconds_count{")
                    && $0.contains(#"gen_ai_request_model="fleet-8b""#) && $0.contains(#"route="car""#)
                    && $0.contains(#"zone="eu""#)
            }
            #expect(ttftCount?.hasSuffix(" 1") == true, "\(String(describing: ttftCount))")
            #expect(after.contains(#"gen_ai_token_type="output""#))
            #expect(after.contains(#"fleet_zone_refusals_total{zone="ch"} 0"#))
            // The car job's predicted ÷ observed TTFT lands in buckets around 1 (the default ones began at 5).
            #expect(after.contains(#"fleet_ttft_predicted_over_observed_bucket{le="1.0"}"#), "\(after)")
            #expect(after.contains(#"fleet_ttft_predicted_over_observed_count 1"#))

            // Every family says what it is, so `promtool check metrics` (an operator's CI lint) passes.
            let helped = Set(
                after.split(separator: "\n").compactMap { line in
                    line.hasPrefix("# HELP ") ? line.split(separator: " ").dropFirst(2).first.map(String.init) : nil
                })
            #expect(Self.families(after).subtracting(helped).isEmpty, "\(Self.families(after).subtracting(helped))")
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID()).txt")
                try after.write(to: file, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(at: file) }
                let lint = try await Subprocess.run("sh", ["-c", "promtool check metrics < '\(file.path)'"])
                #expect(lint.status == 0, "\(lint.stdout)\(lint.stderr)")
            }
        }
    }

    /// helper-73: a car whose renewal job stopped dropped out within days, and nothing said so.
    @Test("fleet_car_credentials_expiring counts connected cars whose credential expires within 48 h")
    func credentialsExpiring() async throws {
        try await withFleet { fleet in
            func expiring() async throws -> Double? {
                try await Self.metrics(fleet).split(separator: "\n").first {
                    $0.hasPrefix("fleet_car_credentials_expiring ")
                }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            }
            #expect(try await expiring() == 0)
            var renewed = CarSpec("car-renewed")
            renewed.tokenExpires = Date().addingTimeInterval(30 * 86_400)
            _ = try await fleet.startCar(renewed)
            #expect(try await expiring() == 0)
            var stale = CarSpec("car-stale")
            stale.tokenExpires = Date().addingTimeInterval(86_400)
            _ = try await fleet.startCar(stale)
            #expect(try await expiring() == 1)
        }
    }
}
