import FleetTesting
import Foundation

/// Loads a report in headless Chromium (Debian's `chromium`) and checks the DOM it built against
/// the summaries: one SVG element per sample in every plot, and every number shown equal to the
/// JSON's. Returns the problems found (empty: the page says what the JSON says).
package enum ReportCheck {
    package static func verify(report: String, summaries: [String]) async throws -> [String] {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-load-chromium-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let result = try await Subprocess.run(
            "chromium",
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                "--dump-dom", URL(fileURLWithPath: report).absoluteString,
            ],
            timeout: 90)
        guard result.status == 0, result.stdout.contains("</html>") else {
            return ["chromium failed (status \(result.status)): \(result.stderr.suffix(500))"]
        }
        let json = try summaries.map { try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: $0))) }
        let decoded = try summaries.map { try SummaryFiles.read($0) }
        return self.check(dom: result.stdout, json: json, summaries: decoded)
    }

    /// Whether a number shown equals the summary's, to within a few ulps.
    package static func same(_ shown: Double?, _ value: Double) -> Bool {
        guard let shown else { return false }
        return shown == value || abs(shown - value) <= 4 * value.magnitude.ulp
    }

    /// The checks on a DOM dump (public for tests of the checker itself).
    package static func check(dom: String, json: [Any], summaries: [Summary]) -> [String] {
        var problems: [String] = []
        var cells = 0
        // Numbers: <td data-run="R" data-key="K">V</td> and the PASS/FAIL badge.
        for match in dom.matches(of: /data-run="(\d+)" data-key="([^"]+)">([^<]*)</) {
            cells += 1
            let run = Int(match.1)!, key = String(match.2), shown = String(match.3)
            guard run < json.count, let value = self.lookup(json[run], key) else {
                problems.append("run \(run): \(key) is shown (\(shown)) but not in the summary")
                continue
            }
            if let flag = value as? Bool, key == "passed" {
                if (flag ? "PASS" : "FAIL") != shown { problems.append("run \(run): passed is \(flag), page says \(shown)") }
            } else if let number = value as? NSNumber {
                // Equal to the last bits: Foundation's JSON parser and Swift's Double(String) may round a
                // 17-digit value (6.1000000000000005) one ulp apart; anything shown wrong is far more.
                if !Self.same(Double(shown), number.doubleValue) {
                    problems.append("run \(run): \(key) is \(number) in the summary, \(shown) in the page")
                }
            } else {
                problems.append("run \(run): \(key) is not a number in the summary")
            }
        }
        if cells < 20 * summaries.count { problems.append("only \(cells) numbers in the page") }

        for (run, s) in summaries.enumerated() {
            // Latency over time: a circle per request with a first token, a square per request without.
            if let svg = self.svg(dom, plot: "latency", run: run) {
                let circles = svg.matches(of: #/<circle /#).count, squares = svg.matches(of: #/<rect /#).count
                let withTTFT = s.points.filter { $0.ttft != nil }.count
                if circles != withTTFT || squares != s.points.count - withTTFT {
                    problems.append(
                        "run \(run): latency plot has \(circles) circles and \(squares) squares for \(withTTFT) "
                            + "and \(s.points.count - withTTFT) samples")
                }
            } else {
                problems.append("run \(run): no latency plot")
            }
            if let svg = self.svg(dom, plot: "throughput", run: run) {
                for (series, n) in self.polylines(svg) where n.count != s.timeline.count {
                    problems.append("run \(run): throughput \(series) has \(n.count) points for \(s.timeline.count) seconds")
                }
                let churn = svg.firstMatch(of: /<g class="churn"[^>]*>(.*?)<\/g>/.dotMatchesNewlines())
                let lines = churn.map { $0.1.matches(of: #/<line /#).count } ?? -1
                if lines != s.churn.count { problems.append("run \(run): \(lines) churn marks for \(s.churn.count) events") }
            } else {
                problems.append("run \(run): no throughput plot")
            }
            if let svg = self.svg(dom, plot: "gateway", run: run) {
                for (series, n) in self.polylines(svg) where n.count != s.gateway.samples.count {
                    problems.append("run \(run): gateway \(series) has \(n.count) points for \(s.gateway.samples.count) samples")
                }
            }
        }
        // CDFs: one vertex per request with a first token in the group.
        for (plot, key) in [("cdf-route", \Summary.Point.route), ("cdf-zone", \Summary.Point.zone)] {
            guard let svg = self.svg(dom, plot: plot, run: nil) else {
                problems.append("no \(plot) plot")
                continue
            }
            var seen = 0
            for line in svg.matches(of: /<polyline data-run="(\d+)" data-group="[a-z]+=([^"]*)"[^>]*points="([^"]*)"/) {
                seen += 1
                let run = Int(line.1)!, group = String(line.2)
                let expected = summaries[run].points.filter { $0[keyPath: key] == group && $0.ttft != nil }.count
                let vertices = line.3.split(separator: " ").count
                if vertices != expected { problems.append("\(plot) run \(run) \(group): \(vertices) points for \(expected) samples") }
            }
            let groups = summaries.map { s in Set(s.points.filter { $0.ttft != nil }.map { $0[keyPath: key] }).count }
            if seen != groups.reduce(0, +) { problems.append("\(plot): \(seen) curves for \(groups) groups") }
        }
        return problems
    }

    static func svg(_ dom: String, plot: String, run: Int?) -> Substring? {
        let open = "<svg data-plot=\"\(plot)\"" + (run.map { " data-run=\"\($0)\"" } ?? "")
        guard let start = dom.range(of: open), let end = dom.range(of: "</svg>", range: start.upperBound..<dom.endIndex)
        else { return nil }
        return dom[start.lowerBound..<end.upperBound]
    }

    /// Series name → vertices of each `<polyline data-series=…>`.
    static func polylines(_ svg: Substring) -> [(String, [Substring])] {
        svg.matches(of: /<polyline data-series="([^"]+)"[^>]*points="([^"]*)"/).map {
            (String($0.1), $0.2.split(separator: " "))
        }
    }

    /// `a.b.0.c` in decoded JSON; group keys such as `route=car` are single components.
    static func lookup(_ root: Any, _ path: String) -> Any? {
        var node: Any? = root
        for part in path.split(separator: ".") {
            if let object = node as? [String: Any] {
                node = object[String(part)]
            } else if let array = node as? [Any], let i = Int(part), i < array.count {
                node = array[i]
            } else {
                return nil
            }
        }
        return node
    }
}
