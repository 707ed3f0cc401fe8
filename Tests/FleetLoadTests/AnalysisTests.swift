import FleetAgent
import FleetLoadKit
import FleetTesting
import Foundation
import Testing

@Suite("Run analysis", .timeLimit(.minutes(1)))
struct AnalysisTests {
    /// A plan of 6 requests (DE, DE, US, GB, DE, CH) and the results and job records a run could leave.
    static func analysis(records extra: [JobLog.Record] = []) throws -> Analysis {
        var scenario = try Scenario.parse(yaml: ScenarioTests.minimal, file: "t.yaml")
        scenario.invariants.expectedErrors = ["no_capacity_in_zone"]
        var plan = RunPlan(scenario: scenario)
        let countries = ["DE", "DE", "US", "GB", "DE", "CH"]
        plan.requests = countries.enumerated().map { i, country in
            RunPlan.Request(
                id: "r\(i)", at: Double(i), measured: true, country: country, address: "x", model: "fleet-8b",
                promptTokens: 10, maxTokens: 4, streaming: true, cancelAfter: nil, seed: i, conversation: i)
        }
        var results: [RequestResult] = []
        for i in 0..<6 {
            var r = RequestResult(index: i, sentAt: Double(i) + 0.1, lagMicros: 100 * i)
            if i == 5 {
                r.status = 503
                r.error = "no_capacity_in_zone"
            } else {
                r.status = 200
                r.outcome = .ok
                r.ttftMicros = 100_000 * (i + 1)
                r.totalMicros = 200_000 * (i + 1)
                r.gapsMicros = [20_000, 21_000, 22_000]
                r.tokens = 4
                r.route = i == 4 ? "central" : "car"
                r.zone = ["eu", "eu", "us", "gb", "eu"][i]
            }
            results.append(r)
        }
        var records = try (0..<5).map { i in
            try Self.record(
                "r\(i)", region: ["eu-central", "eu-west", "us-east", "gb", "eu-central"][i],
                vehicle: i == 4 ? "central-eu-central" : "lt-car-\(i)", resumeFrom: 0, tokens: 4)
        }
        records += extra
        return Analysis(
            scenario: scenario, plan: plan, results: results, records: records,
            gateway: [.init(t: 1, cpu: 0.5, rss: 50 << 20), .init(t: 2, cpu: 0.7, rss: 52 << 20)],
            gatewayCPUSeconds: 1.2, churn: [.init(t: 2.5, kind: "kill", car: 3)], carsRegistered: 20,
            started: "2026-12-01T00:00:00Z", loadAverage: [[1, 1, 1], [2, 2, 2]])
    }

    /// A job record as a car writes it (one JSON line).
    static func record(_ id: String, region: String, vehicle: String, resumeFrom: Int, tokens: Int) throws
        -> JobLog.Record
    {
        let line = """
            {"request_id":"\(id)","region":"\(region)","vehicle_id":"\(vehicle)","resume_from":\(resumeFrom),\
            "tokens":\(tokens),"outcome":"completed","started":0,"ended":1}
            """
        return try JSONDecoder().decode(JobLog.Record.self, from: Data(line.utf8))
    }

    @Test("idle memory per tunnel: overall from before any car, marginal from the first step on")
    func idleMemory() {
        let idle = Summary.IdleMemory(
            rssBefore: 100 << 20,
            steps: [
                .init(tunnels: 1_000, rss: 130 << 20), .init(tunnels: 5_000, rss: 230 << 20),
                .init(tunnels: 10_000, rss: 350 << 20),
            ])
        #expect(idle.tunnels == 10_000 && idle.rssWithCars == 350 << 20)
        #expect(idle.bytesPerTunnel == (250 << 20) / 10_000)
        #expect(idle.marginalBytesPerTunnel == (220 << 20) / 9_000)
        #expect(
            Summary.IdleMemory(rssBefore: 1 << 20, steps: [.init(tunnels: 90, rss: 2 << 20)]).marginalBytesPerTunnel
                == nil)
        #expect(HarnessRun.memorySteps(10_000) == [1_000, 5_000, 10_000])
        #expect(HarnessRun.memorySteps(999) == [999])
    }

    @Test("a clean run passes; an expected refusal does not count against the budget")
    func clean() throws {
        let s = try Self.analysis().summary()
        #expect(s.passed, "\(s.invariants)")
        #expect(s.requests.ok == 5 && s.requests.expectedFailures == 1 && s.requests.failed == 0)
        #expect(s.checks.zoneViolations == 0 && s.checks.unrecorded == 0 && s.checks.recordGaps == 0)
        #expect(s.latency["ttft"]?["route=central"]?.count == 1)
        #expect(abs((s.latency["ttft"]?["all"]?.p50 ?? 0) - 300) < 1)  // HDR, 3 significant digits
        #expect(s.latency["gap"]?["all"]?.count == 15)
    }

    @Test("a job served outside a strict zone is a violation, counted from the car's record")
    func violation() throws {
        // Request r3 came from GB (strict zone gb); a car in eu-west also ran part of it.
        let leak = try Self.record("r3", region: "eu-west", vehicle: "lt-car-9", resumeFrom: 2, tokens: 2)
        let s = try Self.analysis(records: [leak]).summary()
        #expect(s.checks.zoneViolations == 1)
        #expect(!s.passed)
        // A US request served in another zone is outside a preferred zone: reported, not a violation.
        let spill = try Self.record("r2", region: "eu-west", vehicle: "lt-car-9", resumeFrom: 0, tokens: 4)
        let p = try Self.analysis(records: [spill]).summary()
        #expect(p.checks.zoneViolations == 0 && p.checks.outsidePreferredZone == 1)
    }

    @Test("a gateway that ended, streams still open at the drain, a warm-up token lost: each fails by name (helper-68)")
    func harnessFailures() throws {
        var ended = try Self.analysis()
        ended.gatewayEnded = "signal 9 (seen at 12 s; sending stopped)"
        let died = ended.summary()
        #expect(!died.passed)
        #expect(
            died.invariants.contains { !$0.passed && $0.name.hasPrefix("gateway still running (it ended: signal 9") })

        var frozen = try Self.analysis()
        frozen.openAtDrain = 2
        let open = frozen.summary().invariants.first { $0.name == "requests never sent or never closed" }
        #expect(open?.value == 2 && open?.passed == false)

        var warm = try Self.analysis()
        warm.plan.requests[0].measured = false
        warm.results[0].textError = .lost
        let lost = warm.summary().invariants.first { $0.name == "lost or repeated tokens" }
        #expect(lost?.value == 1 && lost?.passed == false)
    }

    @Test("the watch tells a running process from one that ended (a zombie counts as ended)")
    func watchSeesDeath() throws {
        #expect(GatewayWatch.isAlive(getpid()))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try ChildLauncher.run(child)
        ChildExit.wait(for: child)
        #expect(!GatewayWatch.isAlive(child.processIdentifier))
        #expect(!GatewayWatch.isAlive(Int32.max))
    }
}
