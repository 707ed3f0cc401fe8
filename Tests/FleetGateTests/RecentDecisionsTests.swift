@testable import FleetGate
import Testing

@Suite("Recent decisions")
struct RecentDecisionsTests {
    private func entry(_ n: Int) -> RecentDecisions.Entry {
        .init(
            time: Double(n), requestID: "r\(n)", status: 200, originRegion: "eu-central", zone: "eu", route: "car",
            region: "eu-central", vehicle: "v", attempts: 1, migrations: 0, tokens: n, reason: "car")
    }

    @Test("Newest first, the oldest dropped once the ring is full, at every fill level", arguments: [0, 1, 99, 100, 101, 250])
    func ring(recorded: Int) {
        let decisions = RecentDecisions()
        for n in 0..<recorded { decisions.record(self.entry(n)) }
        let kept = decisions.latest.map(\.tokens)
        let expected = Array((max(0, recorded - RecentDecisions.capacity)..<recorded).reversed())
        #expect(kept == expected)
    }
}
