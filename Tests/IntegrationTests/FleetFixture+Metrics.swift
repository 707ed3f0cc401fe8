import FleetTesting
import Foundation
import HTTPTypes

extension FleetFixture {
    /// The admin port's `/metrics` text.
    func metrics() async throws -> String {
        let client = try await RecordingClient.connect(port: self.adminPort)
        defer { client.close() }
        return try await client.send(
            HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
        ).collect().body
    }

    /// `fleet_attempt_failures_total{kind=…}` on the admin port's `/metrics` (0 before the first).
    func attemptFailures(kind: String) async throws -> Int {
        try await self.counter("fleet_attempt_failures_total", label: "kind", value: kind)
    }

    /// A counter with one label, `name{label="value"}`, on the admin port's `/metrics` (0 before the
    /// first; -1 when its value is not a whole number).
    func counter(_ name: String, label: String, value: String) async throws -> Int {
        let metrics = try await self.metrics()
        let line = "\(name){\(label)=\"\(value)\"} "
        guard let start = metrics.range(of: line)?.upperBound else { return 0 }
        return Int(metrics[start...].prefix { $0.isNumber }) ?? -1
    }

    /// The series of `name` whose labels include every one of `labels`, with their values.
    func series(_ name: String, with labels: [String: String]) async throws -> [(line: String, value: Double)] {
        try await self.metrics().split(separator: "\n").compactMap { line in
            guard line.hasPrefix(name + "{"), labels.allSatisfy({ line.contains("\($0.key)=\"\($0.value)\"") }),
                let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
            else { return nil }
            return (String(line), value)
        }
    }
}
