import AsyncHTTPClient
import FleetAgent
import FleetGate
import FleetScheduler
import FleetTesting
import Foundation
import Testing

/// Issue #20 with the real model: a car that returns wrong text is caught by teacher-forced audits
/// on trusted capacity and quarantined; an honest car on the same model passes its audits.
/// With `CI=true` a missing runtime fails.
@Suite(
    "Audits of car results (real model)", .serialized, .timeLimit(.minutes(4)),
    .enabled(if: LocalRuntime.required || ProcessInfo.processInfo.environment["FLEETGATE_MODEL"] != nil))
struct AuditTests {
    /// One chat request through the gateway with curl; returns the served route.
    static func ask(_ fleet: FleetFixture, _ question: String) async throws -> String {
        let body = #"{"model":"smollm2-135m","max_tokens":12,"messages":[{"role":"user","content":"\#(question)"}]}"#
        let result = try await Subprocess.run(
            "curl", ["-s", "-D", "-", "--max-time", "120", "-H", "content-type: application/json", "-d", body,
                fleet.baseURL + "/v1/chat/completions"], timeout: 130)
        return result.stdout
    }

    /// Waits until `vehicle` has `count` audits counted.
    static func waitForAudits(_ auditor: Auditor, _ vehicle: String, _ count: Int) async throws {
        try await waitUntil(timeout: .seconds(90), "\(count) audits of \(vehicle)") {
            (auditor.reputation(of: vehicle)?.audits ?? 0) >= count
        }
    }

    @Test("A car that always returns wrong text is quarantined after 2 audits; an honest car passes its audits")
    func cheaterQuarantined() async throws {
        // One runtime plays both roles (cars' and trusted): requests and audits run one at a time.
        let runtime = try await LocalRuntime.start()
        defer { runtime.stop() }
        let engine = try await OpenAILocalEngine.connect(.init(baseURL: runtime.baseURL, slots: 1), client: .shared)
        try await withFleet(configure: { config in
            config.audit.endpoints = [.init(region: "eu-central", baseURL: runtime.baseURL)]
            config.audit.fraction = 1
        }) { fleet in
            let auditor = try #require(fleet.gateway.core.auditor)
            try await fleet.startCar("cheater", engine: CheatingEngine(inner: engine, every: 1))
            for (index, question) in ["What is the capital of France?", "Name a colour."].enumerated() {
                let answer = try await Self.ask(fleet, question)
                #expect(answer.contains("x-fleet-route: car"), "\(answer.prefix(400))")
                try await Self.waitForAudits(auditor, "cheater", index + 1)
            }
            #expect(auditor.reputation(of: "cheater")?.failures == 2)
            try await waitUntil(timeout: .seconds(5), "cheater quarantined and gone") {
                fleet.gateway.core.trust.isQuarantined("cheater")
                    && !fleet.gateway.core.registry.all().contains { $0.descriptor.vehicleID == "cheater" }
            }

            try await fleet.startCar("honest", engine: engine)
            for (index, question) in ["What is two plus two?", "Say hello in Spanish."].enumerated() {
                let answer = try await Self.ask(fleet, question)
                #expect(answer.contains("x-fleet-route: car"), "\(answer.prefix(400))")
                try await Self.waitForAudits(auditor, "honest", index + 1)
            }
            #expect(auditor.reputation(of: "honest")?.failures == 0)
            #expect(!fleet.gateway.core.trust.isQuarantined("honest"))
        }
    }
}
