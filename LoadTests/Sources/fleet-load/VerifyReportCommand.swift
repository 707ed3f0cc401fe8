import ArgumentParser
import FleetLoadKit

/// `fleet-load verify-report REPORT SUMMARY…`: opens the report in headless Chromium and checks its
/// DOM against the summaries (points per plot, every number shown).
struct VerifyReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-report", abstract: "Check a report.html against its summary.json files in headless Chromium.")

    @Argument(help: "The report.html.") var report: String
    @Argument(help: "The summary.json of each run in it, in order.") var summaries: [String]

    func run() async throws {
        let problems = try await ReportCheck.verify(report: self.report, summaries: self.summaries)
        for problem in problems { print(problem) }
        print("fleet-load: \(self.report): " + (problems.isEmpty ? "every plot and number matches" : "\(problems.count) problems"))
        if !problems.isEmpty { throw ExitCode(1) }
    }
}
