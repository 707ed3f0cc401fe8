import FleetLoadKit
import FleetProtocol
import Testing

@Suite("Scenario files and the run plan", .timeLimit(.minutes(1)))
struct ScenarioTests {
    static let minimal = """
        name: t
        seed: 7
        duration: 10
        fleet:
          - {region: eu-central, count: 20, hardware: {ai5: 0.5, hw3: 0.5}}
        churn:
          - {kind: kill, ratePer10Minutes: 6, region: eu-central}
        clients:
          arrivals: {process: poisson, rate: 50}
          geo:
            - {country: DE, share: 1, ranges: [91.0.0.0/24]}
        """

    @Test("the shipped scenarios are valid")
    func shipped() throws {
        for name in ["smoke", "baseline", "churn-storm", "eu-under-load", "knee", "scale", "links"] {
            let scenario = try Scenario.load(path: "LoadTests/scenarios/\(name).yaml")
            #expect(scenario.name == name)
        }
    }

    @Test("every problem is reported with file:line:column, key and value")
    func errors() {
        let yaml = """
            name: bad
            duration: 10
            fleet:
              - {region: mars, count: 5}
              - region: eu-central
                count: 3
                hardware: {ai5: 0.5, hw9: 0.5}
            churn:
              - {kind: explode, at: 3}
            clients:
              arrivals: {process: poisson, rate: 5}
              geo:
                - {country: DE, share: 0.5, ranges: [91.0.0.0/33]}
              streamingShare: 2
              colour: blue
            """
        do {
            _ = try Scenario.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("a bad scenario was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:4:") && text.contains("'fleet[0].region': 'mars'"), "\(text)")
            #expect(text.contains("bad.yaml:7:") && text.contains("hw9"), "\(text)")
            #expect(text.contains("bad.yaml:9:") && text.contains("'explode'"), "\(text)")
            #expect(text.contains("bad.yaml:13:") && text.contains("91.0.0.0/33"), "\(text)")
            #expect(text.contains("clients.geo") && text.contains("shares must sum to 1"), "\(text)")
            #expect(text.contains("bad.yaml:14:") && text.contains("clients.streamingShare"), "\(text)")
            #expect(text.contains("bad.yaml:15:") && text.contains("'clients.colour'"), "\(text)")
        }
    }

    @Test("a plan is a function of the scenario and its seed")
    func deterministic() throws {
        let scenario = try Scenario.parse(yaml: Self.minimal, file: "t.yaml")
        let a = RunPlan(scenario: scenario), b = RunPlan(scenario: scenario)
        #expect(a.requests == b.requests && a.cars == b.cars && a.churn == b.churn)
        // Poisson at 50/s over 10 s: 500 ± 4σ.
        #expect(abs(a.requests.count - 500) < 90)
        #expect(a.requests.allSatisfy { $0.address.hasPrefix("91.0.0.") })
        // 6 × 20 cars per 10 min over 10 s: 2 expected; every churned car is a distinct one.
        #expect(Set(a.churn.map(\.car)).count == a.churn.count)
        var other = scenario
        other.seed = 8
        #expect(RunPlan(scenario: other).requests != a.requests)
    }

    @Test("the reference text finds lost, repeated and corrupt tokens")
    func reference() {
        let seed = 42
        let tokens = (0..<6).map { SyntheticText.token(seed: UInt64(seed), index: $0) }
        var good = ReferenceText(requestSeed: seed)
        // Chunking does not matter.
        #expect(good.feed(tokens[0] + tokens[1]) && good.feed(tokens[2]))
        good.finish(expectingTokens: 3)
        #expect(good.error == nil && good.tokenCount == 3)

        var lost = ReferenceText(requestSeed: seed)
        lost.feed(tokens[0])
        lost.feed(tokens[2] + tokens[3])
        #expect(lost.error == .lost)

        var repeated = ReferenceText(requestSeed: seed)
        repeated.feed(tokens[0] + tokens[1])
        repeated.feed(tokens[1])
        #expect(repeated.error == .repeated || tokens[1] == tokens[2])

        var short = ReferenceText(requestSeed: seed)
        short.feed(tokens[0])
        short.finish(expectingTokens: 2)
        #expect(short.error == .lost)

        var corrupt = ReferenceText(requestSeed: seed)
        corrupt.feed("zzz ")
        #expect(corrupt.error == .corrupt)
    }
}
