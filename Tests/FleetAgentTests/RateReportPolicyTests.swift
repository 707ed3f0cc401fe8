import FleetAgent
import FleetProtocol
import Synchronization
import Testing

/// When a car tells the gateway its measured rates (no sockets: the policy is pure).
@Suite("Rate reports")
struct RateReportPolicyTests {
    private func offer(_ decode: Double, _ prefill: Double = 200, id: String = "m") -> ModelOffer {
        ModelOffer(id: id, decodeTokensPerSecond: decode, prefillTokensPerSecond: prefill)
    }

    @Test("The first measurement is reported; the same rates never twice", .timeLimit(.minutes(1)))
    func firstAndSame() {
        #expect(RateReportPolicy.shouldReport([self.offer(20)], last: nil, elapsed: .zero))
        #expect(!RateReportPolicy.shouldReport([self.offer(20)], last: [self.offer(20)], elapsed: .seconds(60)))
    }

    @Test("A rate that moved more than 10 % is reported after a second, a small drift only after 5 s", .timeLimit(.minutes(1)))
    func movedOrDrifted() {
        let last = [self.offer(20, 200)]
        #expect(!RateReportPolicy.shouldReport([self.offer(30, 200)], last: last, elapsed: .milliseconds(999)))
        #expect(RateReportPolicy.shouldReport([self.offer(23, 200)], last: last, elapsed: .seconds(1)))
        #expect(RateReportPolicy.shouldReport([self.offer(20, 170)], last: last, elapsed: .seconds(1)))
        #expect(!RateReportPolicy.shouldReport([self.offer(21, 205)], last: last, elapsed: .seconds(1)))
        #expect(!RateReportPolicy.shouldReport([self.offer(21, 205)], last: last, elapsed: .milliseconds(4_999)))
        #expect(RateReportPolicy.shouldReport([self.offer(21, 205)], last: last, elapsed: .seconds(5)))
    }

    @Test("A model that was not in the last report is reported", .timeLimit(.minutes(1)))
    func newModel() {
        #expect(
            RateReportPolicy.shouldReport(
                [self.offer(20), self.offer(30, id: "other")], last: [self.offer(20)], elapsed: .seconds(1)))
    }

    @Test("Within a second of a report no rates could be reported, so they are not gathered", .timeLimit(.minutes(1)))
    func mayReportBoundsShouldReport() {
        var random = SystemRandomNumberGenerator()
        let last = [self.offer(20, 200)]
        for _ in 0..<2_000 {
            let elapsed = Duration.milliseconds(Int.random(in: 0..<7_000, using: &random))
            let rates = [self.offer(.random(in: 0...80, using: &random), .random(in: 0...800, using: &random))]
            if !RateReportPolicy.mayReport(reportedBefore: true, elapsed: elapsed) {
                #expect(!RateReportPolicy.shouldReport(rates, last: last, elapsed: elapsed))
            }
            #expect(RateReportPolicy.mayReport(reportedBefore: false, elapsed: elapsed))
        }
        #expect(!RateReportPolicy.mayReport(reportedBefore: true, elapsed: .milliseconds(999)))
        #expect(RateReportPolicy.mayReport(reportedBefore: true, elapsed: .seconds(1)))
    }

    @Test("The car asks its engine for rates only when a report may be due, and reports the first at once", .timeLimit(.minutes(1)))
    func stateAsksOnlyWhenDue() {
        let state = AgentState(initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1), slots: 1)
        let messages = Mutex(0)
        _ = state.subscribe { _ in messages.withLock { $0 += 1 } }
        var asked = 0
        state.reportRates {
            asked += 1
            return [self.offer(20)]
        }
        #expect(asked == 1)
        #expect(messages.withLock { $0 } == 1)
        // Right after: no report is possible, so the engine is not asked (and nothing is sent).
        for decode in [30.0, 40, 50] {
            state.reportRates {
                asked += 1
                return [self.offer(decode)]
            }
        }
        #expect(asked == 1)
        #expect(messages.withLock { $0 } == 1)
    }
}
