import Foundation
import Logging
import Metrics
import Testing

@testable import FleetGate

/// The revocation file as a gateway polls it (helper-73: a deleted file let every revoked car back in,
/// and a Kubernetes Secret's `..data` symlink swap went unseen).
@Suite("The polled revocation file")
struct RevocationPollTests {
    static func directory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fleet-revocations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func trust(_ file: String?, quarantines: String? = nil) -> FleetTrust {
        FleetTrust(
            revocationFile: file, quarantineFile: quarantines,
            metrics: TrustMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
    }

    @Test("A deleted file keeps the list it replaced, and is not read again until it changes")
    func missingKeepsList() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("revocations").path
        try "vehicle car-2\n".write(toFile: file, atomically: true, encoding: .utf8)
        let trust = Self.trust(file)
        #expect(trust.refusal(vehicleID: "car-2", identity: nil) == "vehicle revoked")

        try FileManager.default.removeItem(atPath: file)
        #expect(!trust.reloadIfChanged())
        #expect(trust.refusal(vehicleID: "car-2", identity: nil) == "vehicle revoked")
        #expect(!trust.reloadIfChanged(), "a missing file is tried again only when it changes")

        try "vehicle car-3\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(trust.reloadIfChanged())
        #expect(trust.refusal(vehicleID: "car-2", identity: nil) == nil)
        #expect(trust.refusal(vehicleID: "car-3", identity: nil) == "vehicle revoked")
    }

    @Test("A Secret-style swap of the ..data symlink is seen, though the link the path names did not change")
    func symlinkSwap() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        // As the kubelet lays out a Secret: revocations → ..data/revocations, ..data → ..2026_1.
        for (version, text) in [("..2026_1", "vehicle car-1\n"), ("..2026_2", "vehicle car-9\n")] {
            try fm.createDirectory(at: dir.appendingPathComponent(version), withIntermediateDirectories: true)
            try text.write(
                to: dir.appendingPathComponent(version).appendingPathComponent("revocations"), atomically: true,
                encoding: .utf8)
        }
        try fm.createSymbolicLink(atPath: dir.appendingPathComponent("..data").path, withDestinationPath: "..2026_1")
        let file = dir.appendingPathComponent("revocations").path
        try fm.createSymbolicLink(atPath: file, withDestinationPath: "..data/revocations")
        let trust = Self.trust(file)
        #expect(trust.refusal(vehicleID: "car-1", identity: nil) == "vehicle revoked")

        // The swap: a new ..data link renamed over the old one.
        let next = dir.appendingPathComponent("..data_tmp").path
        try fm.createSymbolicLink(atPath: next, withDestinationPath: "..2026_2")
        #expect(rename(next, dir.appendingPathComponent("..data").path) == 0)
        #expect(trust.reloadIfChanged())
        #expect(trust.refusal(vehicleID: "car-1", identity: nil) == nil)
        #expect(trust.refusal(vehicleID: "car-9", identity: nil) == "vehicle revoked")
    }
}
