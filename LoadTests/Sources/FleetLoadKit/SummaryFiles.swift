package import Foundation

/// Reads and writes a run's `summary.json` and `report.html`.
package enum SummaryFiles {
    /// Writes `summary.json` and `report.html` into `directory`.
    package static func write(_ summary: Summary, to directory: String) throws {
        try self.encode(summary).write(to: URL(fileURLWithPath: directory + "/summary.json"))
        try HTMLReport.render([(summary.scenario, summary)]).write(
            toFile: directory + "/report.html", atomically: true, encoding: .utf8)
    }

    /// The summary as sorted, pretty-printed JSON.
    package static func encode(_ summary: Summary) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(summary)
    }

    /// Reads a `summary.json`.
    package static func read(_ path: String) throws -> Summary {
        try JSONDecoder().decode(Summary.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A few lines for the terminal: the invariants and the headline numbers.
    package static func text(_ s: Summary) -> String {
        var lines = ["fleet-load \(s.scenario) (seed \(s.seed)): \(s.passed ? "PASS" : "FAIL")"]
        let r = s.requests
        lines.append(
            "  \(r.measured) measured requests (\(String(format: "%.1f", r.streamsPerSecond))/s): \(r.ok) ok, \(r.failed) failed, "
                + "\(r.cancelled) cancelled, \(r.expectedFailures) expected failures; \(String(format: "%.0f", r.tokensPerSecond)) tokens/s; "
                + "retried \(r.retried), failed over \(r.failedOver)")
        if let t = s.latency["ttft"]?["all"], let g = s.latency["gap"]?["all"] {
            lines.append(
                "  TTFT ms p50 \(t.p50) p90 \(t.p90) p99 \(t.p99) max \(t.max); gap ms p50 \(g.p50) p99 \(g.p99) max \(g.max)")
        }
        // TTFT by the serving car's emulated link and by the client's protocol.
        for prefix in ["link=", "protocol="] {
            let groups = (s.latency["ttft"] ?? [:]).filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
            guard !groups.isEmpty else { continue }
            lines.append(
                "  TTFT by \(prefix.dropLast()) (n, p50, p90 ms): "
                    + groups.map { "\($0.key.dropFirst(prefix.count)) \($0.value.count), \($0.value.p50), \($0.value.p90)" }
                    .joined(separator: "; "))
        }
        if let c = s.conversations, c.laterTurns > 0 {
            lines.append(
                "  conversations: \(c.laterTurns) later turns carrying the answers received; \(c.onPreviousCar) of "
                    + "\(c.answered) answered on the previous turn's car (the gateway exposes no prefix-hit count)")
        }
        lines.append(
            "  gateway: \(String(format: "%.1f", s.gateway.cpuSeconds)) CPU s, peak RSS \(s.gateway.peakRSS >> 20) MiB; "
                + "client lag p99 \(s.clientLag.p99) ms; load average \(s.loadAverage.map { $0.map { String(format: "%.2f", $0) }.joined(separator: " ") }.joined(separator: " → "))")
        if let gap = s.failoverGap {
            // helper-103: "the others" when there were none.
            let over =
                gap.count < r.failedOver
                ? "over \(gap.count) of the \(r.failedOver) failed over: the others had too few tokens for a gap"
                : "over all \(gap.count) failed over"
            lines.append("  failover gap ms p50 \(gap.p50) max \(gap.max) (\(over))")
        }
        lines.append(
            "  knee: " + (s.knee.streamsPerSecond.map { "\($0) streams/s at \(s.knee.at ?? 0) s (\(s.knee.reason ?? ""))" } ?? "not reached")
                + "; best window that held \(s.knee.lastGoodStreamsPerSecond ?? 0) streams/s")
        if !s.errors.isEmpty {
            lines.append("  errors: " + s.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        for c in s.invariants {
            lines.append("  [\(c.passed ? "ok" : "FAIL")] \(c.name): \(c.value) (limit \(c.limit))")
        }
        return lines.joined(separator: "\n")
    }
}
