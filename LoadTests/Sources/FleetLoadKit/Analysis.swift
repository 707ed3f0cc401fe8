package import FleetAgent
package import FleetGeo
import FleetProtocol
import Foundation
import Histogram

/// Turns what a run saw — client results, the cars' job records, process samples — into the
/// ``Summary``. Pure: everything comes in as values, so it is tested without a gateway.
package struct Analysis {
    package var scenario: Scenario
    package var plan: RunPlan
    package var results: [RequestResult]
    package var records: [JobLog.Record]
    package var gateway: [ProcessSampler.Sample]
    package var gatewayCPUSeconds: Double
    package var churn: [Summary.ChurnMark]
    package var carsRegistered: Int
    package var started: String
    package var loadAverage: [[Double]]
    package var regions: RegionMap = .default
    package var idleMemory: Summary.IdleMemory?
    /// Lateness of a 100 ms timer on the cars' event loop, sampled through the run (µs).
    package var carLoopLagMicros: [Int] = []
    /// Requests still open when the harness stopped waiting for them (a frozen gateway's).
    package var openAtDrain = 0
    /// How the gateway ended, when it did before the run was over (nil: it was still running).
    package var gatewayEnded: String?

    package init(
        scenario: Scenario, plan: RunPlan, results: [RequestResult], records: [JobLog.Record],
        gateway: [ProcessSampler.Sample], gatewayCPUSeconds: Double, churn: [Summary.ChurnMark], carsRegistered: Int,
        started: String, loadAverage: [[Double]]
    ) {
        self.scenario = scenario
        self.plan = plan
        self.results = results
        self.records = records
        self.gateway = gateway
        self.gatewayCPUSeconds = gatewayCPUSeconds
        self.churn = churn
        self.carsRegistered = carsRegistered
        self.started = started
        self.loadAverage = loadAverage
    }

    static func stats(_ micros: [Int]) -> Summary.Stats? {
        guard !micros.isEmpty else { return nil }
        var h = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        for v in micros { _ = h.record(UInt64(max(0, v))) }
        func ms(_ v: UInt64) -> Double { (Double(v) / 1000 * 1000).rounded() / 1000 }
        return Summary.Stats(
            count: Int(h.totalCount), mean: (h.mean / 1000 * 1000).rounded() / 1000, p50: ms(h.valueAtPercentile(50)),
            p90: ms(h.valueAtPercentile(90)), p99: ms(h.valueAtPercentile(99)), p999: ms(h.valueAtPercentile(99.9)),
            max: ms(h.max))
    }

    /// The zone id of a region, and of a client country (through its region).
    func zone(ofCountry country: String) -> RegionMap.Zone? {
        self.regions.region(forCountry: country).flatMap { self.regions.zone(ofRegion: $0.id) }
    }

    /// The first 5-second window (by send time, measured requests) that broke the budget or the objective.
    func knee() -> Summary.Knee {
        let requests = self.plan.requests
        let expected = self.scenario.invariants.expectedErrors
        let objective = self.scenario.clients.ttftObjectiveMilliseconds.map { $0 * 1000 }
        let windows = Dictionary(grouping: self.results.filter { requests[$0.index].measured }) { Int($0.sentAt / 5) }
        var knee = Summary.Knee()
        for w in windows.keys.sorted() {
            let rs = windows[w]!
            let rate = Double(rs.count) / 5
            let failed = rs.filter { $0.outcome == .failed && !expected.contains($0.error ?? "") }.count
            let p99 = Self.stats(rs.compactMap(\.ttftMicros)).map { $0.p99 * 1000 } ?? 0
            var reason: String?
            if Double(failed) / Double(rs.count) > self.scenario.invariants.errorBudget {
                reason = "\(failed) of \(rs.count) failed"
            } else if let objective, p99 > Double(objective) {
                reason = "TTFT p99 \(p99 / 1000) ms over \(objective / 1000) ms"
            }
            if let reason {
                knee.streamsPerSecond = rate
                knee.reason = reason
                knee.at = Double(w * 5)
                return knee
            }
            knee.lastGoodStreamsPerSecond = max(knee.lastGoodStreamsPerSecond ?? 0, rate)
        }
        return knee
    }

    package func summary() -> Summary {
        let requests = self.plan.requests
        let measured = self.results.filter { requests[$0.index].measured }
        let hardware = Dictionary(uniqueKeysWithValues: self.plan.cars.map { ($0.vehicleID, $0.hardware.rawValue) })
        let links = Dictionary(uniqueKeysWithValues: self.plan.cars.map { ($0.vehicleID, $0.state.link.rawValue) })
        let recordsByRequest = Dictionary(grouping: self.records, by: \.requestID)
        let expected = self.scenario.invariants.expectedErrors

        // Latency groups.
        var groups: [String: [String: [Int]]] = ["ttft": [:], "gap": [:], "total": [:]]
        var failoverGaps: [Int] = []
        var errors: [String: Int] = [:]
        var ok = 0, failed = 0, cancelled = 0, expectedFailures = 0, retried = 0, moved = 0, tokens = 0
        var lost = 0, repeated = 0, corrupt = 0
        // Text is checked on every answer, warm-up too: a lost token is a defect whenever it happens.
        for r in self.results {
            switch r.textError {
            case .lost: lost += 1
            case .repeated: repeated += 1
            case .corrupt: corrupt += 1
            case nil: break
            }
        }
        for r in measured {
            let request = requests[r.index]
            switch r.outcome {
            case .ok: ok += 1
            case .cancelled: cancelled += 1
            case .failed:
                if let code = r.error, expected.contains(code) { expectedFailures += 1 } else { failed += 1 }
            }
            if let code = r.error { errors[code, default: 0] += 1 }
            tokens += r.tokens
            if (r.attempts ?? 1) > 1 { retried += 1 }
            if (r.migrations ?? 0) > 0 {
                moved += 1
                if let gap = r.gapsMicros.max() { failoverGaps.append(Int(gap)) }
            }
            guard r.outcome != .failed || r.ttftMicros != nil else { continue }
            let car = recordsByRequest[request.id]?.last?.vehicleID
            var keys = [
                "all", "route=\(r.route ?? "-")", "zone=\(r.zone ?? "-")", "model=\(request.model)",
                "protocol=\(request.http1 ? "http1" : "h2")",
            ]
            if let car, let hw = hardware[car] { keys.append("hardware=\(hw)") }
            // The emulated link of the car that served it (a continuation: the last car's).
            if let car, let link = links[car] { keys.append("link=\(link)") }
            for key in keys {
                if let ttft = r.ttftMicros { groups["ttft"]![key, default: []].append(ttft) }
                if r.outcome == .ok, let total = r.totalMicros { groups["total"]![key, default: []].append(total) }
                groups["gap"]![key, default: []].append(contentsOf: r.gapsMicros.map(Int.init))
            }
        }
        let latency = groups.mapValues { $0.compactMapValues { Self.stats($0) } }

        // Zones and coverage, from the job records against each client's own origin.
        var violations = 0, outsidePreferred = 0, unrecorded = 0, gaps = 0
        for r in self.results where r.status == 200 {
            let request = requests[r.index]
            guard let jobs = recordsByRequest[request.id], !jobs.isEmpty else {
                unrecorded += 1
                continue
            }
            let origin = self.zone(ofCountry: request.country)
            for job in jobs {
                let served = self.regions.zone(ofRegion: job.region)
                guard let origin, served?.id != origin.id else { continue }
                if origin.residency == .strict { violations += 1 } else { outsidePreferred += 1 }
            }
            if r.outcome == .ok && request.streaming {
                var covered = 0
                for job in jobs.sorted(by: { $0.resumeFrom < $1.resumeFrom }) {
                    if job.resumeFrom > covered { break }
                    covered = max(covered, job.resumeFrom + job.tokens)
                }
                if covered < request.maxTokens { gaps += 1 }
            }
        }

        // Later turns of conversations: on the car that served the previous turn (prefix affinity's aim)?
        var conversations = Summary.Conversations()
        for r in measured where requests[r.index].previous != nil {
            let request = requests[r.index]
            conversations.laterTurns += 1
            guard r.status == 200, let job = recordsByRequest[request.id]?.first,
                let before = recordsByRequest[requests[request.previous!].id]?.last
            else { continue }
            conversations.answered += 1
            if job.vehicleID == before.vehicleID { conversations.onPreviousCar += 1 }
        }

        // Time series by send time.
        let seconds = Int((self.scenario.warmup + self.scenario.duration).rounded(.up))
        var timeline = (0..<max(1, seconds)).map { Summary.Second(t: $0, sent: 0, ok: 0, failed: 0, tokens: 0) }
        for r in self.results {
            let t = min(timeline.count - 1, max(0, Int(r.sentAt)))
            timeline[t].sent += 1
            if r.outcome == .ok { timeline[t].ok += 1 }
            if r.outcome == .failed { timeline[t].failed += 1 }
            timeline[t].tokens += r.tokens
        }
        let points = measured.sorted { $0.sentAt < $1.sentAt }.map { r in
            Summary.Point(
                t: (r.sentAt * 1000).rounded() / 1000, ttft: r.ttftMicros.map { Double($0) / 1000 },
                total: r.totalMicros.map { Double($0) / 1000 }, route: r.route ?? "-", zone: r.zone ?? "-",
                outcome: r.outcome.rawValue)
        }

        let duration = self.scenario.duration
        let counts = Summary.Requests(
            planned: requests.count, measured: measured.count, ok: ok, failed: failed, cancelled: cancelled,
            expectedFailures: expectedFailures,
            errorRate: measured.isEmpty ? 0 : Double(failed) / Double(measured.count), retried: retried,
            failedOver: moved, tokens: tokens, tokensPerSecond: Double(tokens) / duration,
            streamsPerSecond: Double(measured.count) / duration)
        let checks = Summary.Checks(
            jobRecords: self.records.count, zoneViolations: violations, outsidePreferredZone: outsidePreferred,
            unrecorded: unrecorded, lostTokens: lost, repeatedTokens: repeated, corruptText: corrupt, recordGaps: gaps)
        let lag =
            Self.stats(self.results.map(\.lagMicros))
            ?? .init(
                count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
        let carLag =
            Self.stats(self.carLoopLagMicros) ?? .init(count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
        let inv = self.scenario.invariants
        let unsent = requests.count - self.results.count + self.openAtDrain
        var checksList = [
            Summary.Check(
                name: "error rate", limit: inv.errorBudget, value: counts.errorRate,
                passed: counts.errorRate <= inv.errorBudget),
            Summary.Check(
                name: "zone violations", limit: 0, value: Double(violations), passed: violations == 0),
            Summary.Check(
                name: "lost or repeated tokens", limit: 0, value: Double(lost + repeated + corrupt + gaps),
                passed: lost + repeated + corrupt + gaps == 0),
            Summary.Check(
                name: "answered requests without a job record", limit: 0, value: Double(unrecorded),
                passed: unrecorded == 0),
            Summary.Check(
                name: "client lag p99 (ms)", limit: inv.maxClientLagMilliseconds, value: lag.p99,
                passed: lag.p99 <= inv.maxClientLagMilliseconds),
            Summary.Check(
                name: "cars' event loop lag p99 (ms)", limit: 1000, value: carLag.p99, passed: carLag.p99 <= 1000),
            Summary.Check(
                name: "requests never sent or never closed", limit: 0, value: Double(unsent), passed: unsent == 0),
            Summary.Check(
                name: self.gatewayEnded.map { "gateway still running (it ended: \($0))" } ?? "gateway still running",
                limit: 0, value: self.gatewayEnded == nil ? 0 : 1, passed: self.gatewayEnded == nil),
        ]
        if measured.isEmpty {
            checksList.append(Summary.Check(name: "measured requests", limit: 1, value: 0, passed: false))
        }
        return Summary(
            scenario: self.scenario.name, file: self.scenario.file, seed: self.scenario.seed, started: self.started,
            loadAverage: self.loadAverage, warmupSeconds: self.scenario.warmup, durationSeconds: duration,
            cars: self.plan.cars.count, carsRegistered: self.carsRegistered, tunnelTLS: self.scenario.gateway.tunnelTLS,
            requests: counts, errors: errors, latency: latency, failoverGap: Self.stats(failoverGaps), checks: checks,
            gateway: .init(
                cpuSeconds: self.gatewayCPUSeconds, peakRSS: self.gateway.map(\.rss).max() ?? 0, samples: self.gateway),
            conversations: conversations, clientLag: lag, carLoopLag: carLag, timeline: timeline, churn: self.churn,
            points: points, knee: self.knee(), idleMemory: self.idleMemory,
            invariants: checksList,
            passed: checksList.allSatisfy(\.passed))
    }
}
