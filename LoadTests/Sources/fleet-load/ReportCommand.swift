import ArgumentParser
import FleetLoadKit
import Foundation

/// `fleet-load report A/summary.json [B/summary.json]`: renders one run's report again, or two side by side.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Render the HTML report of one run, or of two side by side.")

    @Argument(help: "One or two summary.json files.") var summaries: [String]
    @Option(help: "Labels of the runs (default: their parent directories).") var label: [String] = []
    @Option(help: "The HTML file to write.") var output = "report.html"

    func run() throws {
        guard (1...2).contains(self.summaries.count) else { throw ValidationError("give one or two summary.json files") }
        let runs = try self.summaries.enumerated().map { i, path in
            (
                i < self.label.count ? self.label[i] : URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent,
                try SummaryFiles.read(path)
            )
        }
        try HTMLReport.render(runs).write(toFile: self.output, atomically: true, encoding: .utf8)
        print("fleet-load: wrote \(self.output)")
    }
}
