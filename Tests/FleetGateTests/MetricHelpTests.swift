import Foundation
import Testing

@testable import FleetGate

@Suite("Metric help")
struct MetricHelpTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../docs").standardized

    @Test("A # HELP line goes before each # TYPE line of a known family, and nothing else changes")
    func annotates() {
        let body = Array(
            "# TYPE fleet_active_streams gauge\nfleet_active_streams 0\n# TYPE other_thing counter\nother_thing 1\n"
                .utf8)
        let annotated = String(decoding: MetricHelp.annotate(body), as: UTF8.self)
        #expect(
            annotated
                == "# HELP fleet_active_streams Completion requests in flight.\n# TYPE fleet_active_streams gauge\n"
                + "fleet_active_streams 0\n# TYPE other_thing counter\nother_thing 1\n")
        #expect(MetricHelp.annotate([]) == [])
        #expect(MetricHelp.annotate(Array("x 1".utf8)) == Array("x 1".utf8))  // no final newline
    }

    @Test("Every family with a help text is documented for operators, and the texts are one plain line")
    func documented() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.docs.path).filter { $0.hasSuffix(".md") }
        let text = try files.map { try String(contentsOf: Self.docs.appendingPathComponent($0), encoding: .utf8) }
            .joined()
        for (name, help) in MetricHelp.texts {
            #expect(text.contains("`\(name)`") || text.contains("`\(name){"), "\(name) is not in docs/")
            #expect(!help.contains("\n") && !help.contains("\\") && !help.isEmpty, "\(name)")
        }
    }
}
