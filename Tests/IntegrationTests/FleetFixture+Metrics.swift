import FleetTesting
import Foundation
import HTTPTypes

extension FleetFixture {
    /// `fleet_attempt_failures_total{kind=…}` on the admin port's `/metrics` (0 before the first).
    func attemptFailures(kind: String) async throws -> Int {
        try await self.counter("fleet_attempt_failures_total", label: "kind", value: kind)
    }

    /// A counter with one label, `name{label="value"}`, on the admin port's `/metrics` (0 before the
    /// first; -1 when its value is not a whole number).
    func counter(_ name: String, label: String, value: String) async throws -> Int {
        let client = try await RecordingClient.connect(port: self.adminPort)
        defer { client.close() }
        let metrics = try await client.send(
            HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/metrics"), body: nil
        ).collect().body
        let line = "\(name){\(label)=\"\(value)\"} "
        guard let start = metrics.range(of: line)?.upperBound else { return 0 }
        return Int(metrics[start...].prefix { $0.isNumber }) ?? -1
    }
}
