package import FleetGeo
import FleetProtocol
import Foundation
import Yams

/// Every problem found in a scenario file, each with file:line:column, the key and the bad value.
package struct ScenarioErrors: Error, Sendable, CustomStringConvertible {
    /// The region map's issue type: one problem with its file, line, column, key and value.
    package typealias Issue = RegionMapErrors.Issue

    package var issues: [Issue]
    package var description: String { self.issues.map(\.description).joined(separator: "\n") }
}

extension Scenario {
    /// Loads and checks a scenario file against the default region map.
    /// - Throws: ``ScenarioErrors`` with every problem found, not just the first.
    package static func load(path: String, regions: RegionMap = .default) throws(ScenarioErrors) -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioErrors(issues: [
                .init(file: path, line: 0, column: 0, key: "-", value: nil, message: "cannot read the file: \(error)")
            ])
        }
        return try self.parse(yaml: text, file: path, regions: regions)
    }

    /// Parses and checks scenario YAML; `file` names it in errors.
    package static func parse(yaml: String, file: String, regions: RegionMap = .default) throws(ScenarioErrors)
        -> Scenario
    {
        var reader = ScenarioReader(file: file, regions: regions)
        let scenario = reader.read(yaml)
        guard reader.issues.isEmpty, let scenario else { throw ScenarioErrors(issues: reader.issues) }
        return scenario
    }
}

/// Walks the YAML node tree, collecting issues with their marks.
private struct ScenarioReader {
    let file: String
    let regions: RegionMap
    var issues: [ScenarioErrors.Issue] = []

    init(file: String, regions: RegionMap) {
        self.file = file
        self.regions = regions
    }

    mutating func issue(_ node: Node?, _ key: String, _ value: String?, _ message: String) {
        let mark = node?.mark
        self.issues.append(
            .init(
                file: self.file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, value: value,
                message: message))
    }

    /// The fields of a mapping, reporting unknown and repeated keys.
    mutating func fields(_ node: Node?, _ path: String, allowed: [String]) -> [String: Node] {
        guard let node else { return [:] }
        guard let mapping = node.mapping else {
            self.issue(node, path, node.scalar?.string, "must be a mapping")
            return [:]
        }
        var out: [String: Node] = [:]
        for (k, v) in mapping {
            let key = k.scalar?.string ?? ""
            let full = path.isEmpty ? key : "\(path).\(key)"
            if !allowed.contains(key) {
                self.issue(k, full, nil, "unknown key; expected one of \(allowed.joined(separator: ", "))")
            } else if out[key] != nil {
                self.issue(k, full, nil, "appears twice")
            } else {
                out[key] = v
            }
        }
        return out
    }

    mutating func number(
        _ node: Node?, _ path: String, in range: ClosedRange<Double>, default value: Double? = nil
    ) -> Double? {
        guard let node else {
            if value == nil { self.issue(nil, path, nil, "is required") }
            return value
        }
        guard let s = node.scalar?.string, let d = Double(s), range.contains(d) else {
            self.issue(node, path, node.scalar?.string, "must be a number in \(range.lowerBound)…\(range.upperBound)")
            return value
        }
        return d
    }

    mutating func int(_ node: Node?, _ path: String, in range: ClosedRange<Int>, default value: Int? = nil) -> Int? {
        guard let node else {
            if value == nil { self.issue(nil, path, nil, "is required") }
            return value
        }
        guard let s = node.scalar?.string, let i = Int(s), range.contains(i) else {
            self.issue(node, path, node.scalar?.string, "must be an integer in \(range.lowerBound)…\(range.upperBound)")
            return value
        }
        return i
    }

    mutating func bool(_ node: Node?, _ path: String, default value: Bool) -> Bool {
        guard let node else { return value }
        switch node.scalar?.string {
        case "true": return true
        case "false": return false
        default:
            self.issue(node, path, node.scalar?.string, "must be true or false")
            return value
        }
    }

    mutating func string(_ node: Node?, _ path: String) -> String? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, !s.isEmpty else {
            self.issue(node, path, nil, "must be a non-empty string")
            return nil
        }
        return s
    }

    mutating func region(_ node: Node?, _ path: String) -> String? {
        guard let id = self.string(node, path) else {
            if node == nil { self.issue(nil, path, nil, "is required") }
            return nil
        }
        guard self.regions.regions[id] != nil else {
            self.issue(
                node, path, id, "not a region of the region map; expected one of \(self.regions.regions.keys.sorted())")
            return nil
        }
        return id
    }

    /// `{name: share, …}` with shares summing to 1 (± 0.001), each name checked by `parse`.
    mutating func shares<T>(_ node: Node?, _ path: String, _ parse: (String) -> T?, expected: String) -> [(T, Double)]
    {
        guard let node else { return [] }
        guard let mapping = node.mapping, !mapping.isEmpty else {
            self.issue(node, path, node.scalar?.string, "must be a mapping of \(expected) to shares")
            return []
        }
        var out: [(T, Double)] = []
        var total = 0.0
        for (k, v) in mapping {
            let name = k.scalar?.string ?? ""
            guard let value = parse(name) else {
                self.issue(k, "\(path).\(name)", name, "unknown; expected \(expected)")
                continue
            }
            guard let share = self.number(v, "\(path).\(name)", in: 0...1) else { continue }
            total += share
            out.append((value, share))
        }
        if abs(total - 1) > 0.001 { self.issue(node, path, "\(total)", "shares must sum to 1") }
        return out
    }

    /// `{type: share, …}` or `{type: {share, rttMilliseconds, jitterMilliseconds, uplinkMbps,
    /// downlinkMbps}, …}` (numbers left out keep the type's ``LinkProfile/defaults(for:)``); absent: all Wi-Fi.
    mutating func links(_ node: Node?, _ path: String) -> [(Scenario.Link, Double)] {
        guard let node else { return [(Scenario.Link(type: .wifi), 1)] }
        let expected = "wifi, cellular, satellite or ethernet"
        guard let mapping = node.mapping, !mapping.isEmpty else {
            self.issue(node, path, node.scalar?.string, "must be a mapping of \(expected) to a share or {share, …}")
            return []
        }
        var out: [(Scenario.Link, Double)] = []
        var total = 0.0
        for (k, v) in mapping {
            let name = k.scalar?.string ?? ""
            let key = "\(path).\(name)"
            guard let type = LinkType(rawValue: name) else {
                self.issue(k, key, name, "unknown; expected \(expected)")
                continue
            }
            var link = Scenario.Link(type: type)
            let share: Double?
            if v.mapping != nil {
                let f = self.fields(
                    v, key, allowed: ["share", "rttMilliseconds", "jitterMilliseconds", "uplinkMbps", "downlinkMbps"])
                share = self.number(f["share"], "\(key).share", in: 0...1)
                let d = link.profile
                link.profile = LinkProfile(
                    rttMilliseconds: self.number(
                        f["rttMilliseconds"], "\(key).rttMilliseconds", in: 0...10_000, default: d.rttMilliseconds)
                        ?? d.rttMilliseconds,
                    jitterMilliseconds: self.number(
                        f["jitterMilliseconds"], "\(key).jitterMilliseconds", in: 0...10_000,
                        default: d.jitterMilliseconds) ?? d.jitterMilliseconds,
                    uplinkMbps: self.number(f["uplinkMbps"], "\(key).uplinkMbps", in: 0.01...100_000, default: d.uplinkMbps)
                        ?? d.uplinkMbps,
                    downlinkMbps: self.number(
                        f["downlinkMbps"], "\(key).downlinkMbps", in: 0.01...100_000, default: d.downlinkMbps)
                        ?? d.downlinkMbps)
            } else {
                share = self.number(v, key, in: 0...1)
            }
            guard let share else { continue }
            total += share
            out.append((link, share))
        }
        if abs(total - 1) > 0.001 { self.issue(node, path, "\(total)", "shares must sum to 1") }
        return out
    }

    mutating func logNormal(_ node: Node?, _ path: String, default d: Scenario.LogNormal) -> Scenario.LogNormal {
        guard node != nil else { return d }
        let f = self.fields(node, path, allowed: ["median", "sigma", "min", "max"])
        let median = self.number(f["median"], "\(path).median", in: 1...100_000, default: d.median) ?? d.median
        let sigma = self.number(f["sigma"], "\(path).sigma", in: 0...3, default: d.sigma) ?? d.sigma
        let low = self.int(f["min"], "\(path).min", in: 1...100_000, default: d.min) ?? d.min
        let high = self.int(f["max"], "\(path).max", in: 1...100_000, default: d.max) ?? d.max
        if low > high { self.issue(node, path, nil, "min must not exceed max") }
        return .init(median: median, sigma: sigma, min: low, max: max(low, high))
    }

    mutating func read(_ yaml: String) -> Scenario? {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            self.issue(nil, "-", nil, "not valid YAML: \(error)")
            return nil
        }
        guard let root else {
            self.issue(nil, "-", nil, "the file is empty")
            return nil
        }
        let top = self.fields(
            root, "",
            allowed: [
                "name", "seed", "duration", "warmup", "gateway", "carsPerSecond", "fleet", "central", "churn", "clients",
                "invariants",
            ])
        let carsPerSecond = self.number(top["carsPerSecond"], "carsPerSecond", in: 1...1_000_000, default: 500) ?? 500
        let name = self.string(top["name"], "name") ?? "unnamed"
        let seed = self.int(top["seed"], "seed", in: 0...Int.max, default: 1) ?? 1
        let duration = self.number(top["duration"], "duration", in: 1...3_600) ?? 1
        let warmup = self.number(top["warmup"], "warmup", in: 0...3_600, default: 0) ?? 0
        let gateway = self.gateway(top["gateway"])
        if top["fleet"] == nil { self.issue(root, "fleet", nil, "is required") }
        let fleet = (top["fleet"].flatMap { self.list($0, "fleet") } ?? []).enumerated().compactMap {
            self.carGroup($0.element, "fleet[\($0.offset)]")
        }
        let central = (top["central"].flatMap { self.list($0, "central") } ?? []).enumerated().compactMap {
            self.central($0.element, "central[\($0.offset)]")
        }
        let churn = (top["churn"].flatMap { self.list($0, "churn") } ?? []).enumerated().compactMap {
            self.churn($0.element, "churn[\($0.offset)]")
        }
        if top["clients"] == nil { self.issue(root, "clients", nil, "is required") }
        let clients = self.clients(top["clients"])
        let invariants = self.invariants(top["invariants"])
        guard let clients else { return nil }
        return Scenario(
            name: name, file: self.file, seed: UInt64(seed), duration: duration, warmup: warmup, gateway: gateway, carsPerSecond: carsPerSecond,
            fleet: fleet, central: central, churn: churn, clients: clients, invariants: invariants)
    }

    mutating func list(_ node: Node, _ path: String) -> [Node]? {
        guard let sequence = node.sequence else {
            self.issue(node, path, node.scalar?.string, "must be a list")
            return nil
        }
        return Array(sequence)
    }

    mutating func gateway(_ node: Node?) -> Scenario.GatewaySetup {
        var setup = Scenario.GatewaySetup()
        let f = self.fields(node, "gateway", allowed: ["tunnelTLS", "eventLoopThreads", "arguments"])
        setup.tunnelTLS = self.bool(f["tunnelTLS"], "gateway.tunnelTLS", default: false)
        setup.eventLoopThreads =
            self.int(f["eventLoopThreads"], "gateway.eventLoopThreads", in: 0...64, default: 1) ?? 1
        if let args = f["arguments"] {
            setup.arguments = (self.list(args, "gateway.arguments") ?? []).compactMap {
                self.string($0, "gateway.arguments")
            }
        }
        return setup
    }

    mutating func carGroup(_ node: Node, _ path: String) -> Scenario.CarGroup? {
        let f = self.fields(
            node, path,
            allowed: ["region", "count", "hardware", "links", "pluggedIn", "charge", "policy", "slowdown"])
        let region = self.region(f["region"], "\(path).region")
        let count = self.int(f["count"], "\(path).count", in: 0...100_000)
        var hardware = self.shares(
            f["hardware"], "\(path).hardware", { HardwareClass(rawValue: $0) }, expected: "hw3, hw4 or ai5")
        if f["hardware"] == nil { hardware = [(.ai5, 1)] }
        let links = self.links(f["links"], "\(path).links")
        let plugged = self.number(f["pluggedIn"], "\(path).pluggedIn", in: 0...1, default: 1) ?? 1
        var charge = 80...80
        if let c = f["charge"] {
            let items = self.list(c, "\(path).charge") ?? []
            let values = items.compactMap { self.int($0, "\(path).charge", in: 0...100) }
            if values.count == 2, values[0] <= values[1] {
                charge = values[0]...values[1]
            } else {
                self.issue(c, "\(path).charge", nil, "must be [low, high] percent")
            }
        }
        let p = self.fields(f["policy"], "\(path).policy", allowed: ["onlyWhilePlugged", "minChargePercent"])
        let policy = OwnerPolicy(
            onlyWhilePlugged: self.bool(p["onlyWhilePlugged"], "\(path).policy.onlyWhilePlugged", default: true),
            minChargePercent: self.int(p["minChargePercent"], "\(path).policy.minChargePercent", in: 0...100, default: 20)
                ?? 20)
        var slowdown = 1.0...1.0
        if let s = f["slowdown"] {
            let values = (self.list(s, "\(path).slowdown") ?? []).compactMap {
                self.number($0, "\(path).slowdown", in: 0.01...100)
            }
            if values.count == 2, values[0] <= values[1] {
                slowdown = values[0]...values[1]
            } else {
                self.issue(s, "\(path).slowdown", nil, "must be [low, high]")
            }
        }
        guard let region, let count else { return nil }
        return .init(
            region: region, count: count, hardware: hardware, links: links, pluggedIn: plugged, charge: charge,
            policy: policy, slowdown: slowdown)
    }

    mutating func central(_ node: Node, _ path: String) -> Scenario.CentralSetup? {
        let f = self.fields(node, path, allowed: ["region", "maxConcurrent"])
        let region = self.region(f["region"], "\(path).region")
        let max = self.int(f["maxConcurrent"], "\(path).maxConcurrent", in: 1...100_000, default: 64) ?? 64
        return region.map { .init(region: $0, maxConcurrent: max) }
    }

    mutating func churn(_ node: Node, _ path: String) -> Scenario.ChurnRule? {
        let f = self.fields(
            node, path, allowed: ["kind", "region", "at", "count", "ratePer10Minutes", "notice", "rejoinAfter"])
        var kind: Scenario.ChurnKind?
        if let k = self.string(f["kind"], "\(path).kind") {
            kind = Scenario.ChurnKind(rawValue: k)
            if kind == nil {
                self.issue(
                    f["kind"], "\(path).kind", k,
                    "expected one of \(Scenario.ChurnKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        } else if f["kind"] == nil {
            self.issue(node, "\(path).kind", nil, "is required")
        }
        let region = f["region"].flatMap { self.region($0, "\(path).region") }
        let at = f["at"].flatMap { self.number($0, "\(path).at", in: 0...3_600) }
        let rate = f["ratePer10Minutes"].flatMap { self.number($0, "\(path).ratePer10Minutes", in: 0...10) }
        if (at == nil) == (rate == nil) && self.issues.isEmpty {
            self.issue(node, path, nil, "give exactly one of 'at' (seconds) and 'ratePer10Minutes'")
        }
        let count = self.int(f["count"], "\(path).count", in: 1...100_000, default: 1) ?? 1
        let notice = self.int(f["notice"], "\(path).notice", in: 0...3_600, default: 10) ?? 10
        let rejoin = f["rejoinAfter"].flatMap { self.number($0, "\(path).rejoinAfter", in: 0...3_600) }
        guard let kind else { return nil }
        return .init(
            kind: kind, region: region, at: at, count: count, ratePer10Minutes: rate, noticeSeconds: notice,
            rejoinAfter: rejoin)
    }

    mutating func clients(_ node: Node?) -> Scenario.ClientMix? {
        guard let node else { return nil }
        let f = self.fields(
            node, "clients",
            allowed: [
                "arrivals", "connections", "geo", "models", "promptTokens", "maxTokens", "streamingShare",
                "cancelShare", "multiTurnShare", "ttftObjectiveMilliseconds", "http1Share", "originVia",
            ])
        let arrivals = self.arrivals(f["arrivals"])
        let connections = self.int(f["connections"], "clients.connections", in: 1...10_000, default: 8) ?? 8
        if f["geo"] == nil { self.issue(node, "clients.geo", nil, "is required") }
        var geo: [Scenario.Origin] = []
        var total = 0.0
        for (i, item) in (f["geo"].flatMap { self.list($0, "clients.geo") } ?? []).enumerated() {
            let path = "clients.geo[\(i)]"
            let g = self.fields(item, path, allowed: ["country", "share", "ranges"])
            let country = self.string(g["country"], "\(path).country")
            if let country, country.count != 2 || country.uppercased() != country {
                self.issue(g["country"], "\(path).country", country, "not an ISO 3166-1 alpha-2 country code")
            }
            let share = self.number(g["share"], "\(path).share", in: 0...1) ?? 0
            total += share
            let ranges = (g["ranges"].flatMap { self.list($0, "\(path).ranges") } ?? []).compactMap { r -> String? in
                guard let text = self.string(r, "\(path).ranges"), let cidr = CIDR(text), cidr.address.isIPv4 else {
                    self.issue(r, "\(path).ranges", r.scalar?.string, "not an IPv4 CIDR block")
                    return nil
                }
                return text
            }
            if g["ranges"] == nil { self.issue(item, "\(path).ranges", nil, "is required") }
            if let country {
                geo.append(.init(country: country, share: share, ranges: ranges, line: item.mark?.line ?? 0))
            }
        }
        if !geo.isEmpty && abs(total - 1) > 0.001 {
            self.issue(f["geo"], "clients.geo", "\(total)", "shares must sum to 1")
        }
        var models = self.shares(f["models"], "clients.models", { $0.isEmpty ? nil : $0 }, expected: "a model id")
        if f["models"] == nil { models = [("fleet-8b", 1)] }
        let prompt = self.logNormal(
            f["promptTokens"], "clients.promptTokens", default: .init(median: 200, sigma: 0.6, min: 8, max: 4_000))
        let maxTokens = self.logNormal(
            f["maxTokens"], "clients.maxTokens", default: .init(median: 32, sigma: 0.5, min: 1, max: 256))
        let streaming = self.number(f["streamingShare"], "clients.streamingShare", in: 0...1, default: 1) ?? 1
        let cancel = self.number(f["cancelShare"], "clients.cancelShare", in: 0...1, default: 0) ?? 0
        let multiTurn = self.number(f["multiTurnShare"], "clients.multiTurnShare", in: 0...1, default: 0) ?? 0
        let slo = f["ttftObjectiveMilliseconds"].flatMap {
            self.int($0, "clients.ttftObjectiveMilliseconds", in: 1...600_000)
        }
        let http1 = self.number(f["http1Share"], "clients.http1Share", in: 0...1, default: 0) ?? 0
        var originVia = Scenario.OriginVia.xff
        if let text = self.string(f["originVia"], "clients.originVia") {
            if let via = Scenario.OriginVia(rawValue: text) {
                originVia = via
            } else {
                self.issue(
                    f["originVia"], "clients.originVia", text,
                    "expected one of \(Scenario.OriginVia.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        guard let arrivals else { return nil }
        return .init(
            arrivals: arrivals, connections: connections, geo: geo, models: models, promptTokens: prompt,
            maxTokens: maxTokens, streamingShare: streaming, cancelShare: cancel, multiTurnShare: multiTurn,
            http1Share: http1, originVia: originVia, ttftObjectiveMilliseconds: slo)
    }

    mutating func arrivals(_ node: Node?) -> Scenario.Arrivals? {
        guard let node else {
            self.issue(nil, "clients.arrivals", nil, "is required")
            return nil
        }
        let f = self.fields(node, "clients.arrivals", allowed: ["process", "rate", "from", "to", "burstRate", "every", "length"])
        let p = "clients.arrivals"
        switch self.string(f["process"], "\(p).process") {
        case "poisson":
            return (self.number(f["rate"], "\(p).rate", in: 0.01...1_000_000)).map { .poisson(rate: $0) }
        case "ramp":
            guard let from = self.number(f["from"], "\(p).from", in: 0...1_000_000),
                let to = self.number(f["to"], "\(p).to", in: 0.01...1_000_000)
            else { return nil }
            return .ramp(from: from, to: to)
        case "burst":
            guard let rate = self.number(f["rate"], "\(p).rate", in: 0.01...1_000_000),
                let burst = self.number(f["burstRate"], "\(p).burstRate", in: 0.01...1_000_000),
                let every = self.number(f["every"], "\(p).every", in: 0.1...3_600),
                let length = self.number(f["length"], "\(p).length", in: 0.01...3_600)
            else { return nil }
            return .burst(rate: rate, burstRate: burst, every: every, length: length)
        case let other:
            self.issue(f["process"] ?? node, "\(p).process", other, "expected poisson, ramp or burst")
            return nil
        }
    }

    mutating func invariants(_ node: Node?) -> Scenario.Invariants {
        let f = self.fields(
            node, "invariants",
            allowed: ["errorBudget", "zoneViolations", "lostOrRepeatedTokens", "maxClientLagMilliseconds", "expectedErrors"])
        let expected = (f["expectedErrors"].flatMap { self.list($0, "invariants.expectedErrors") } ?? []).compactMap {
            self.string($0, "invariants.expectedErrors")
        }
        return .init(
            errorBudget: self.number(f["errorBudget"], "invariants.errorBudget", in: 0...1, default: 0.01) ?? 0.01,
            zoneViolations: self.int(f["zoneViolations"], "invariants.zoneViolations", in: 0...0, default: 0) ?? 0,
            lostOrRepeatedTokens: self.int(
                f["lostOrRepeatedTokens"], "invariants.lostOrRepeatedTokens", in: 0...0, default: 0) ?? 0,
            maxClientLagMilliseconds: self.number(
                f["maxClientLagMilliseconds"], "invariants.maxClientLagMilliseconds", in: 1...60_000, default: 100)
                ?? 100,
            expectedErrors: Set(expected))
    }
}
