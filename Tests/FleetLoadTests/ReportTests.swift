import FleetLoadKit
import FleetTesting
import Foundation
import Testing

/// Opens the HTML report in headless Chromium and checks the DOM against the JSON summary.
@Suite("HTML report in Chromium", .timeLimit(.minutes(2)))
struct ReportTests {
    @Test("A number equals the summary's to the last bits, not when it differs in what a reader sees")
    func sameNumber() {
        // CI once saw 6.1000000000000005 read one ulp apart by Foundation's JSON parser and Double(String).
        let value = 6.1000000000000005
        #expect(ReportCheck.same(value.nextUp, value))
        #expect(ReportCheck.same(Double("6.1000000000000005"), value))
        #expect(!ReportCheck.same(6.2, value))
        #expect(!ReportCheck.same(6.1001, value))
        #expect(!ReportCheck.same(nil, value))
    }

    @Test("every plot has one element per sample and every number equals the summary's")
    func chromium() async throws {
        var summary = try AnalysisTests.analysis().summary()
        summary.idleMemory = .init(
            rssBefore: 30 << 20, steps: [.init(tunnels: 100, rss: 33 << 20), .init(tunnels: 1_000, rss: 55 << 20)])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-load-report-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SummaryFiles.write(summary, to: dir)
        let problems = try await ReportCheck.verify(report: dir + "/report.html", summaries: [dir + "/summary.json"])
        #expect(problems.isEmpty, "\(problems)")

        // Side by side: two runs, every number of each, and CDFs of both.
        let pair = dir + "/pair.html"
        try HTMLReport.render([("a", summary), ("b", summary)]).write(toFile: pair, atomically: true, encoding: .utf8)
        let pairProblems = try await ReportCheck.verify(
            report: pair, summaries: [dir + "/summary.json", dir + "/summary.json"])
        #expect(pairProblems.isEmpty, "\(pairProblems)")

        // The check can fail: a number changed in the page is found.
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        try html.replacingOccurrences(of: "data-key=\"requests.ok\">5<", with: "data-key=\"requests.ok\">6<")
            .write(toFile: dir + "/tampered.html", atomically: true, encoding: .utf8)
        let tampered = try await ReportCheck.verify(report: dir + "/tampered.html", summaries: [dir + "/summary.json"])
        #expect(tampered.contains { $0.contains("requests.ok") }, "\(tampered)")
    }
}
