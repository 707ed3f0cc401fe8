import Foundation

/// The self-contained HTML report: no scripts, no external fonts or styles, plots in inline SVG.
///
/// Every number shown carries `data-key="path.in.summary"` and every plot `data-plot`, with one SVG
/// element per sample (a `circle` per request, a polyline vertex per second or per CDF step), so a
/// test can check the page against `summary.json` from the DOM alone. Given two summaries it puts
/// them side by side (tables in two columns, CDFs overlaid: first solid, second dashed).
package enum HTMLReport {
    static let width = 760.0
    static let height = 260.0
    static let margin = (left: 56.0, right: 12.0, top: 14.0, bottom: 30.0)
    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    /// The page for one run, or for two side by side.
    package static func render(_ runs: [(label: String, summary: Summary)]) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>fleet-load: \(esc(runs.map(\.summary.scenario).joined(separator: " vs ")))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1600px}
            h1{font-size:20px}h2{font-size:16px;margin-top:28px}
            table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
            th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#176317;font-weight:bold}.fail{color:#b00;font-weight:bold}
            .runs{display:flex;gap:32px;flex-wrap:wrap}svg{background:#fff;border:1px solid #ddd}
            svg text{font:11px system-ui,sans-serif;fill:#444}.legend span{display:inline-block;margin-right:14px}
            </style></head><body>
            <h1>fleet-load report: \(esc(runs.map { "\($0.label) (\($0.summary.scenario))" }.joined(separator: " vs ")))</h1>

            """
        html += "<div class=\"runs\">\n"
        for (i, run) in runs.enumerated() { html += self.tables(run.summary, label: run.label, run: i) }
        html += "</div>\n"
        for (i, run) in runs.enumerated() {
            let s = run.summary
            let tag = runs.count > 1 ? " — \(esc(run.label))" : ""
            html += "<h2>Time to first token over time\(tag)</h2>\n" + self.latencyPlot(s, run: i)
            html += "<h2>Throughput over time (requests sent and answered per second; churn events marked)\(tag)</h2>\n"
                + self.throughputPlot(s, run: i)
            html += "<h2>Gateway CPU (share of a core) and RSS over time\(tag)</h2>\n" + self.processPlot(s, run: i)
        }
        html += "<h2>TTFT CDF per route</h2>\n" + self.cdfPlot(runs, by: \.route, name: "route")
        html += "<h2>TTFT CDF per zone</h2>\n" + self.cdfPlot(runs, by: \.zone, name: "zone")
        html += "</body></html>\n"
        return html
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A number as the JSON has it (shortest round-trip form).
    static func num(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : "\(v)"
    }

    static func cell(_ value: Double, key: String, run: Int) -> String {
        "<td data-run=\"\(run)\" data-key=\"\(key)\">\(num(value))</td>"
    }

    static func tables(_ s: Summary, label: String, run: Int) -> String {
        var out = "<div><h2>\(esc(label)): \(esc(s.scenario)) — <span class=\"\(s.passed ? "pass" : "fail")\" "
        out += "data-run=\"\(run)\" data-key=\"passed\">\(s.passed ? "PASS" : "FAIL")</span></h2>\n"
        out += "<p>\(esc(s.file)), seed \(s.seed), started \(esc(s.started)); load average before/after "
        out += "\(s.loadAverage.map { $0.map { String(format: "%.2f", $0) }.joined(separator: " ") }.joined(separator: " / ")); "
        out += "\(s.cars) cars (\(s.carsRegistered) registered)\(s.tunnelTLS ? ", TLS tunnels" : ", cleartext tunnels"); "
        out += "warm-up \(num(s.warmupSeconds)) s, measured \(num(s.durationSeconds)) s</p>\n"
        out += "<table><tr><th class=\"l\">invariant</th><th>limit</th><th>value</th><th>ok</th></tr>\n"
        for (i, c) in s.invariants.enumerated() {
            out += "<tr><td class=\"l\">\(esc(c.name))</td>\(cell(c.limit, key: "invariants.\(i).limit", run: run))"
            out += "\(cell(c.value, key: "invariants.\(i).value", run: run))"
            out += "<td class=\"\(c.passed ? "pass" : "fail")\">\(c.passed ? "yes" : "NO")</td></tr>\n"
        }
        out += "</table>\n<table>\n"
        let r = s.requests
        let rows: [(String, Double, String)] = [
            ("requests planned", Double(r.planned), "requests.planned"),
            ("measured", Double(r.measured), "requests.measured"), ("ok", Double(r.ok), "requests.ok"),
            ("failed", Double(r.failed), "requests.failed"), ("cancelled", Double(r.cancelled), "requests.cancelled"),
            ("expected failures", Double(r.expectedFailures), "requests.expectedFailures"),
            ("error rate", r.errorRate, "requests.errorRate"), ("streams/s", r.streamsPerSecond, "requests.streamsPerSecond"),
            ("tokens/s", r.tokensPerSecond, "requests.tokensPerSecond"), ("retried", Double(r.retried), "requests.retried"),
            ("failed over", Double(r.failedOver), "requests.failedOver"),
            ("job records", Double(s.checks.jobRecords), "checks.jobRecords"),
            ("zone violations", Double(s.checks.zoneViolations), "checks.zoneViolations"),
            ("outside preferred zone", Double(s.checks.outsidePreferredZone), "checks.outsidePreferredZone"),
            ("lost tokens", Double(s.checks.lostTokens), "checks.lostTokens"),
            ("repeated tokens", Double(s.checks.repeatedTokens), "checks.repeatedTokens"),
            ("gateway CPU s", s.gateway.cpuSeconds, "gateway.cpuSeconds"),
            ("gateway peak RSS bytes", Double(s.gateway.peakRSS), "gateway.peakRSS"),
            ("client lag p99 ms", s.clientLag.p99, "clientLag.p99"),
            ("cars' event loop lag p99 ms", s.carLoopLag.p99, "carLoopLag.p99"),
        ]
        var all = rows
        if let knee = s.knee.streamsPerSecond { all.append(("knee streams/s (\(esc(s.knee.reason ?? "")))", knee, "knee.streamsPerSecond")) }
        if let good = s.knee.lastGoodStreamsPerSecond { all.append(("last good window streams/s", good, "knee.lastGoodStreamsPerSecond")) }
        if let idle = s.idleMemory {
            all.append(("idle tunnels", Double(idle.tunnels), "idleMemory.tunnels"))
            all.append(("gateway bytes per idle tunnel", Double(idle.bytesPerTunnel), "idleMemory.bytesPerTunnel"))
            if let marginal = idle.marginalBytesPerTunnel {
                all.append(("… marginal (first step to all)", Double(marginal), "idleMemory.marginalBytesPerTunnel"))
            }
        }
        if let c = s.conversations, c.laterTurns > 0 {
            all.append(("later conversation turns", Double(c.laterTurns), "conversations.laterTurns"))
            all.append(("… on the previous turn's car", Double(c.onPreviousCar), "conversations.onPreviousCar"))
        }
        if let gap = s.failoverGap {
            all.append(("failover gap p50 ms", gap.p50, "failoverGap.p50"))
            all.append(("failover gap max ms", gap.max, "failoverGap.max"))
        }
        for (name, value, key) in all {
            out += "<tr><td class=\"l\">\(name)</td>\(cell(value, key: key, run: run))</tr>\n"
        }
        out += "</table>\n"
        if !s.errors.isEmpty {
            out += "<table><tr><th class=\"l\">error</th><th>count</th></tr>\n"
            for (code, n) in s.errors.sorted(by: { $0.key < $1.key }) {
                out += "<tr><td class=\"l\">\(esc(code))</td>\(cell(Double(n), key: "errors.\(code)", run: run))</tr>\n"
            }
            out += "</table>\n"
        }
        out += "<table><tr><th class=\"l\">latency (ms)</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n"
        for metric in ["ttft", "gap", "total"] {
            for (group, st) in (s.latency[metric] ?? [:]).sorted(by: { $0.key < $1.key }) {
                let k = "latency.\(metric).\(group)"
                out += "<tr><td class=\"l\">\(metric) \(esc(group))</td>\(cell(Double(st.count), key: "\(k).count", run: run))"
                out += "\(cell(st.p50, key: "\(k).p50", run: run))\(cell(st.p90, key: "\(k).p90", run: run))"
                out += "\(cell(st.p99, key: "\(k).p99", run: run))\(cell(st.max, key: "\(k).max", run: run))</tr>\n"
            }
        }
        out += "</table></div>\n"
        return out
    }

    /// Plot frame: axes, ticks and labels; returns the SVG opening and a mapping into it.
    struct Frame {
        var xMax: Double
        var yMax: Double
        func x(_ v: Double) -> Double {
            HTMLReport.margin.left + v / max(self.xMax, 1e-9) * (HTMLReport.width - HTMLReport.margin.left - HTMLReport.margin.right)
        }
        func y(_ v: Double) -> Double {
            HTMLReport.height - HTMLReport.margin.bottom - min(v, self.yMax) / max(self.yMax, 1e-9)
                * (HTMLReport.height - HTMLReport.margin.top - HTMLReport.margin.bottom)
        }
        func open(_ plot: String, run: Int?, xLabel: String, yLabel: String) -> String {
            var s = "<svg data-plot=\"\(plot)\"\(run.map { " data-run=\"\($0)\"" } ?? "") width=\"\(Int(HTMLReport.width))\" "
            s += "height=\"\(Int(HTMLReport.height))\" viewBox=\"0 0 \(Int(HTMLReport.width)) \(Int(HTMLReport.height))\" xmlns=\"http://www.w3.org/2000/svg\">\n"
            s += "<g class=\"axes\" stroke=\"#999\"><line x1=\"\(self.x(0))\" y1=\"\(self.y(0))\" x2=\"\(self.x(self.xMax))\" y2=\"\(self.y(0))\"/>"
            s += "<line x1=\"\(self.x(0))\" y1=\"\(self.y(0))\" x2=\"\(self.x(0))\" y2=\"\(self.y(self.yMax))\"/></g>\n<g class=\"ticks\">"
            for i in 0...4 {
                let xv = self.xMax * Double(i) / 4, yv = self.yMax * Double(i) / 4
                s += "<text x=\"\(self.x(xv))\" y=\"\(HTMLReport.height - 12)\" text-anchor=\"middle\">\(HTMLReport.short(xv))</text>"
                s += "<text x=\"\(HTMLReport.margin.left - 4)\" y=\"\(self.y(yv) + 4)\" text-anchor=\"end\">\(HTMLReport.short(yv))</text>"
            }
            s += "<text x=\"\(HTMLReport.width - HTMLReport.margin.right)\" y=\"\(HTMLReport.height - 1)\" text-anchor=\"end\">\(xLabel)</text>"
            s += "<text x=\"4\" y=\"11\">\(yLabel)</text></g>\n"
            return s
        }
    }

    static func short(_ v: Double) -> String {
        v >= 1e6 ? String(format: "%.0fM", v / 1e6) : v >= 1e4 ? String(format: "%.0fk", v / 1e3)
            : v >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// One circle per measured request with a first token; one cross (a `rect`) per request without.
    static func latencyPlot(_ s: Summary, run: Int) -> String {
        let ttfts = s.points.compactMap(\.ttft).sorted()
        let yMax = max(1, ttfts.isEmpty ? 1 : ttfts[min(ttfts.count - 1, Int(Double(ttfts.count) * 0.999))] * 1.1)
        let frame = Frame(xMax: s.warmupSeconds + s.durationSeconds, yMax: yMax)
        var out = frame.open("latency", run: run, xLabel: "seconds", yLabel: "TTFT ms")
        out += "<g class=\"samples\" data-count=\"\(s.points.count)\">"
        for p in s.points {
            if let t = p.ttft {
                let colour = p.route == "central" ? colours[1] : colours[0]
                out += "<circle cx=\"\(f(frame.x(p.t)))\" cy=\"\(f(frame.y(t)))\" r=\"1.5\" fill=\"\(colour)\"/>"
            } else {
                out += "<rect x=\"\(f(frame.x(p.t) - 2))\" y=\"\(f(frame.y(yMax) - 2))\" width=\"4\" height=\"4\" fill=\"#b00\"/>"
            }
        }
        out += "</g></svg>\n<p class=\"legend\"><span style=\"color:\(colours[0])\">● car</span>"
        out += "<span style=\"color:\(colours[1])\">● central</span><span style=\"color:#b00\">■ no first token</span></p>\n"
        return out
    }

    static func throughputPlot(_ s: Summary, run: Int) -> String {
        let yMax = max(1, Double(s.timeline.map(\.sent).max() ?? 1) * 1.1)
        let frame = Frame(xMax: Double(s.timeline.count), yMax: yMax)
        var out = frame.open("throughput", run: run, xLabel: "seconds", yLabel: "per second")
        for (i, (series, values)) in [("sent", s.timeline.map(\.sent)), ("ok", s.timeline.map(\.ok))].enumerated() {
            let pts = values.enumerated().map { "\(f(frame.x(Double($0.offset) + 0.5))),\(f(frame.y(Double($0.element))))" }
            out += "<polyline data-series=\"\(series)\" data-count=\"\(values.count)\" fill=\"none\" stroke=\"\(colours[i])\" "
            out += "stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"/>\n"
        }
        out += "<g class=\"churn\" data-count=\"\(s.churn.count)\">"
        for c in s.churn {
            out += "<line x1=\"\(f(frame.x(c.t)))\" y1=\"\(f(frame.y(0)))\" x2=\"\(f(frame.x(c.t)))\" y2=\"\(f(frame.y(yMax)))\" "
            out += "stroke=\"#ff7f0e\" stroke-dasharray=\"3,3\"><title>\(esc(c.kind)) car \(c.car) at \(num(c.t)) s</title></line>"
        }
        out += "</g></svg>\n<p class=\"legend\"><span style=\"color:\(colours[0])\">— sent</span>"
        out += "<span style=\"color:\(colours[1])\">— answered</span><span style=\"color:#ff7f0e\">┆ churn event</span></p>\n"
        return out
    }

    static func processPlot(_ s: Summary, run: Int) -> String {
        let samples = s.gateway.samples
        let frame = Frame(xMax: max(1, samples.last?.t ?? 1), yMax: max(1, (samples.map(\.cpu).max() ?? 1) * 1.1))
        let rssMax = Double(max(1, samples.map(\.rss).max() ?? 1))
        var out = frame.open("gateway", run: run, xLabel: "seconds", yLabel: "CPU (cores); RSS scaled")
        let cpu = samples.map { "\(f(frame.x($0.t))),\(f(frame.y($0.cpu)))" }
        let rss = samples.map { "\(f(frame.x($0.t))),\(f(frame.y(Double($0.rss) / rssMax * frame.yMax)))" }
        out += "<polyline data-series=\"cpu\" data-count=\"\(samples.count)\" fill=\"none\" stroke=\"\(colours[0])\" points=\"\(cpu.joined(separator: " "))\"/>\n"
        out += "<polyline data-series=\"rss\" data-count=\"\(samples.count)\" fill=\"none\" stroke=\"\(colours[2])\" points=\"\(rss.joined(separator: " "))\"/>\n"
        out += "</svg>\n<p class=\"legend\"><span style=\"color:\(colours[0])\">— CPU</span>"
        out += "<span style=\"color:\(colours[2])\">— RSS (peak \(String(format: "%.1f", Double(s.gateway.peakRSS) / 1_048_576)) MiB)</span></p>\n"
        return out
    }

    /// One polyline per group and run: a vertex per request with a first token (the empirical CDF's steps).
    static func cdfPlot(_ runs: [(label: String, summary: Summary)], by key: KeyPath<Summary.Point, String>, name: String)
        -> String
    {
        var all: [Double] = []
        for run in runs { all += run.summary.points.compactMap(\.ttft) }
        all.sort()
        let xMax = max(1, all.isEmpty ? 1 : all[min(all.count - 1, Int(Double(all.count) * 0.995))] * 1.05)
        let frame = Frame(xMax: xMax, yMax: 1)
        var out = frame.open("cdf-\(name)", run: nil, xLabel: "TTFT ms", yLabel: "share")
        var legend = ""
        var colour = 0
        let groups = Set(runs.flatMap { $0.summary.points.map { $0[keyPath: key] } }).sorted()
        for group in groups {
            for (r, run) in runs.enumerated() {
                let values = run.summary.points.filter { $0[keyPath: key] == group }.compactMap(\.ttft).sorted()
                guard !values.isEmpty else { continue }
                let pts = values.enumerated().map {
                    "\(f(frame.x(min($0.element, xMax)))),\(f(frame.y(Double($0.offset + 1) / Double(values.count))))"
                }
                let c = colours[colour % colours.count]
                out += "<polyline data-run=\"\(r)\" data-group=\"\(name)=\(esc(group))\" data-count=\"\(values.count)\" "
                out += "fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"\(r == 1 ? " stroke-dasharray=\"5,3\"" : "") "
                out += "points=\"\(pts.joined(separator: " "))\"/>\n"
                legend += "<span style=\"color:\(c)\">\(r == 1 ? "┄" : "—") \(esc(group))\(runs.count > 1 ? " (\(esc(run.label)))" : "")</span>"
            }
            colour += 1
        }
        return out + "</svg>\n<p class=\"legend\">\(legend)</p>\n"
    }
}
