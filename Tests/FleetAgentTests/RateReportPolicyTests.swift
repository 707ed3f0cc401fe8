import FleetAgent
import FleetProtocol
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
}
