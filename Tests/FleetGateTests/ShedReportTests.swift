import NIOCore
import Testing

@testable import FleetGate

@Suite("ShedReport: a loop's refusals are logged as episodes, not one line each")
struct ShedReportTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// Measurements every `step` ms from `from` ms to `to` ms (exclusive), `refusals` before each.
    static func run(
        _ report: inout ShedReport, from: Int64, to: Int64, step: Int64 = 5, refusals: Int,
        reason: LoadShedder.Reason = .lag
    ) -> [(at: Int64, line: ShedReport.Line)] {
        var lines: [(at: Int64, line: ShedReport.Line)] = []
        for ms in stride(from: from, to: to, by: Int(step)) {
            for _ in 0..<refusals { report.refused(reason) }
            if let line = report.measured(at: Self.start + .milliseconds(ms)) { lines.append((ms, line)) }
        }
        return lines
    }

    @Test("Nothing refused: no line")
    func quiet() {
        var report = ShedReport()
        #expect(Self.run(&report, from: 0, to: 30_000, step: 50, refusals: 0).isEmpty)
    }

    @Test("25 s of refusals: a line at the start, one every 10 s, and one 10 s after the last refusal with the total")
    func episode() throws {
        var report = ShedReport()
        var lines = Self.run(&report, from: 0, to: 25_000, refusals: 3, reason: .inFlight)
        lines += Self.run(&report, from: 25_000, to: 36_000, refusals: 0)
        try #require(lines.count == 4, "\(lines)")
        #expect(lines[0].at == 0 && lines[0].line == .started(refused: 3, reason: .inFlight))
        // The measurements between two lines are summed: 2,000 measurements of 3 over 10 s.
        #expect(lines[1].at == 10_000)
        #expect(lines[1].line == .continuing(refused: 6_000, over: .seconds(10), reason: .inFlight))
        #expect(lines[2].at == 20_000)
        #expect(lines[2].line == .continuing(refused: 6_000, over: .seconds(10), reason: .inFlight))
        // The last refusal was measured at 24,995 ms; the episode ends 10 s of quiet later.
        #expect(lines[3].at == 34_995)
        #expect(lines[3].line == .ended(refused: 5_000 * 3, over: .milliseconds(24_995)))
    }

    @Test("Stopped during an episode: it ends there, with every refusal counted; stopped outside one: no line")
    func stoppedDuringEpisode() {
        var report = ShedReport()
        #expect(report.stopped() == nil)
        _ = Self.run(&report, from: 0, to: 1_000, refusals: 2)
        report.refused(.lag)  // after the last measurement
        #expect(report.stopped() == .ended(refused: 400 + 1, over: .milliseconds(995)))
        #expect(report.stopped() == nil)
    }

    @Test("Bursts less than the quiet time apart are one episode; a burst after it is a new one")
    func episodes() throws {
        var report = ShedReport()
        var lines: [(at: Int64, line: ShedReport.Line)] = []
        // A burst of 100 ms each second for 5 s: one episode, not a line to start and end each burst.
        for second in Int64(0)..<5 {
            lines += Self.run(&report, from: second * 1_000, to: second * 1_000 + 100, refusals: 1)
            lines += Self.run(&report, from: second * 1_000 + 100, to: second * 1_000 + 1_000, refusals: 0)
        }
        lines += Self.run(&report, from: 5_000, to: 15_000, refusals: 2, reason: .pass)
        lines += Self.run(&report, from: 15_000, to: 26_000, refusals: 0)
        lines += Self.run(&report, from: 30_000, to: 30_010, refusals: 1)
        try #require(lines.count == 4, "\(lines)")
        #expect(lines[0].at == 0 && lines[0].line == .started(refused: 1, reason: .lag))
        // 10 s after the first line: the bursts' 99 and 1,999 measurements of 2 since.
        #expect(lines[1].at == 10_000)
        #expect(lines[1].line == .continuing(refused: 99 + 2 * 1_001, over: .seconds(10), reason: .pass))
        #expect(lines[2].at == 24_995)
        #expect(lines[2].line == .ended(refused: 100 + 2 * 2_000, over: .milliseconds(14_995)))
        #expect(lines[3].at == 30_000 && lines[3].line == .started(refused: 1, reason: .lag))
    }
}
