import FleetAgent
import FleetGate
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import Testing

/// A seeded random generator, so a churn schedule can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state = SplitMix64.mix(self.state &+ SplitMix64.gamma)
        return self.state
    }
}

@Suite("Churn", .timeLimit(.minutes(3)))
struct ChurnTests {
    /// 80 slots at 25 tokens/s each: a zone's three cars hold all its streams with room for a
    /// lost car's, so every failure can move (the bound under test is correctness, not capacity).
    static let engine = ["--slots", "80", "--decode-tps", "25"]

    /// Real agent processes in two zones; cars are killed, frozen and drained at random while
    /// 200+ streams run from EU and US origins. Every stream must end with its reference text (or,
    /// only if it hit the migration bound or its zone emptied, with the SSE error); lost and
    /// repeated tokens, and zone violations, are counted from the agents' job records.
    @Test("Seeded churn (kill, freeze, drain) under 200+ streams: 0 lost, 0 repeated, 0 zone violations")
    func churn() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["FLEET_CHURN_SEED"] ?? "") ?? 20_261_201
        var random = SeededGenerator(state: seed)
        let streamsPerZone = 110
        let maxTokens = 80
        try await withFleet(configure: {
            $0.trustedProxies = ["127.0.0.1/32"]
            $0.geoipDatabase = cityTestDatabase
        }) { fleet in
            let zones: [(region: String, zone: String, origin: String)] = [
                ("eu-central", "eu", "89.160.20.112"), ("us-east", "us", "216.160.83.56"),
            ]
            var agents: [String: AgentProcess] = [:]
            var logs: [String] = []
            var generation = 0
            func spawn(_ name: String, region: String) throws {
                generation += 1
                let log = temporaryJobLog("\(name)-\(generation)")
                logs.append(log)
                agents[name] = try AgentProcess(
                    vehicleID: name, region: region, token: try fleet.token(vehicleID: name, region: region),
                    tunnelPort: fleet.tunnelPort, jobLog: log, extra: Self.engine)
            }
            defer { agents.values.forEach { $0.stop() } }
            for (region, _, _) in zones {
                for i in 0..<3 { try spawn("\(region)-car-\(i)", region: region) }
            }
            try await waitUntil(timeout: .seconds(20), "six cars registered") {
                fleet.gateway.core.registry.all().count == 6
            }
            // Clients: one connection per zone, the harness as the trusted proxy.
            var streams: [(prompt: String, zone: String, stream: RecordingStream)] = []
            var clients: [RecordingClient] = []
            defer { clients.forEach { $0.close() } }
            for (_, zone, origin) in zones {
                let client = try await RecordingClient.connect(port: fleet.clientPort)
                clients.append(client)
                var headers = HTTPFields()
                headers[HTTPField.Name("x-forwarded-for")!] = origin
                for i in 0..<streamsPerZone {
                    let prompt = "churn \(zone) \(i)"
                    var withID = headers
                    withID[HTTPField.Name("x-request-id")!] = "churn-\(zone)-\(i)"
                    streams.append(
                        (
                            prompt, zone,
                            try await client.post(
                                "/v1/chat/completions",
                                json: chatBody(stream: true, maxTokens: maxTokens, prompt: prompt), headers: withID)
                        ))
                }
            }
            // Churn: every 250 ms one car of a random zone is killed, frozen or drained, and a new
            // process takes its place, so each zone keeps capacity.
            var events: [String] = []
            var live: [String: [String]] = [:]
            for (region, _, _) in zones { live[region] = (0..<3).map { "\(region)-car-\($0)" } }
            for _ in 0..<12 {
                try await Task.sleep(for: .milliseconds(250))
                let (region, _, _) = zones[Int.random(in: 0..<zones.count, using: &random)]
                let index = Int.random(in: 0..<3, using: &random)
                let name = live[region]![index]
                guard let victim = agents[name] else { continue }
                switch Int.random(in: 0..<5, using: &random) {
                case 0, 1:
                    victim.kill9()
                    events.append("kill \(name)")
                case 2, 3:
                    victim.freeze()
                    events.append("freeze \(name)")
                default:
                    _ = kill(victim.pid, SIGTERM)  // drain: finish what runs, take nothing new
                    events.append("drain \(name)")
                }
                // A replacement dials in with a new identity (the victim may still be draining).
                let replacement = "\(region)-car-r\(events.count)"
                try spawn(replacement, region: region)
                live[region]![index] = replacement
            }
            var completed = 0
            var errored = 0
            for (prompt, zone, stream) in streams {
                let collected = await stream.collect()
                let result = streamResult(collected)
                if result.status != 200 {
                    Issue.record("\(prompt): status \(result.status) \(collected.body.prefix(300))")
                    continue
                }
                if let code = result.errorCode {
                    errored += 1
                    // Allowed only when the stream hit the migration bound or its zone had no car left.
                    let message = result.errorMessage ?? ""
                    #expect(code == "upstream_error", "\(prompt): \(code)")
                    #expect(
                        message.contains("the most allowed") || message.contains("can continue it"),
                        "\(prompt): \(message)")
                    continue
                }
                completed += 1
                #expect(result.done, "\(prompt): no [DONE]")
                #expect(result.text == referenceText(prompt: prompt, maxTokens: maxTokens), "\(prompt) (\(zone)) differs")
                #expect(result.ids.count == 1)
            }
            // From the job records alone: zones, and which streams moved.
            let records = try logs.flatMap { try JobLog.read(path: $0) }
            let zoneOfRequest = Dictionary(
                uniqueKeysWithValues: streams.indices.map { i in
                    ("churn-\(streams[i].zone)-\(i % streamsPerZone)", streams[i].zone)
                })
            let regionZone = ["eu-central": "eu", "us-east": "us"]
            var violations = 0
            for record in records {
                guard let expected = zoneOfRequest[record.requestID] else { continue }
                if record.zone != expected || regionZone[record.region] != expected { violations += 1 }
            }
            let migrated = Set(records.filter { $0.resumeFrom > 0 }.map(\.requestID))
            // Every completed continuation produced exactly the tokens from its resume point on.
            let repeated = records.filter { $0.outcome == "completed" && $0.tokens != maxTokens - $0.resumeFrom }
            #expect(violations == 0)
            #expect(repeated.isEmpty)
            // Errors only for the two allowed reasons above; and the fleet kept serving.
            #expect(completed * 10 >= streams.count * 8, "only \(completed) of \(streams.count) completed; events \(events)")
            #expect(
                migrated.count * 10 >= streams.count * 3,
                "only \(migrated.count) of \(streams.count) streams migrated; events \(events)")
            #expect(completed + errored == streams.count)
            print(
                "churn seed \(seed): \(streams.count) streams, \(completed) completed, \(errored) errored, "
                    + "\(migrated.count) migrated, \(violations) zone violations; \(events.count) events")
        }
    }
}
