import Foundation
import Logging
import Metrics
import Testing

@testable import FleetGate

/// helper-73: quarantines were in memory only, so a rollout let every quarantined car back in.
/// With `audit.quarantineFile` they are kept in a file in the revocation file's format.
@Suite("The quarantine file")
struct QuarantineFileTests {
    static func trust(quarantines file: String) -> FleetTrust { RevocationPollTests.trust(nil, quarantines: file) }

    @Test("A quarantine is written, survives a restart, and deleting its line lifts it")
    func survivesRestart() throws {
        let dir = try RevocationPollTests.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quarantined").path
        let first = Self.trust(quarantines: file)
        #expect(first.quarantine("car-cheat", reason: "failed 2 of 2 audits"))
        #expect(!first.quarantine("car-cheat", reason: "again"), "once")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("vehicle car-cheat  # ") && text.hasSuffix("failed 2 of 2 audits\n"), "\(text)")
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(first.refusal(vehicleID: "car-cheat", identity: nil) == "quarantined: failed 2 of 2 audits")

        // The next gateway (a restart, a rollout) reads it.
        let next = Self.trust(quarantines: file)
        #expect(next.isQuarantined("car-cheat"))
        #expect(next.refusal(vehicleID: "car-honest", identity: nil) == nil)

        // An operator deletes the line: lifted at the next poll.
        try "# lifted by ops\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(next.reloadIfChanged())
        #expect(!next.isQuarantined("car-cheat"))
    }

    @Test("A file that does not parse changes nothing; a quarantine that could not be saved holds until restart")
    func failures() throws {
        let dir = try RevocationPollTests.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quarantined").path
        try "vehicle car-a\n".write(toFile: file, atomically: true, encoding: .utf8)
        let trust = Self.trust(quarantines: file)
        #expect(trust.isQuarantined("car-a"))
        try "vehicle car-a\nnonsense here and more\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(!trust.reloadIfChanged())
        #expect(trust.isQuarantined("car-a"))

        // The file cannot be written (its directory is gone): kept in memory, across reloads.
        let gone = dir.appendingPathComponent("gone")
        let lost = Self.trust(quarantines: gone.appendingPathComponent("quarantined").path)
        #expect(lost.quarantine("car-b", reason: "failed 2 of 2 audits"))
        _ = lost.reloadIfChanged(force: true)
        #expect(lost.isQuarantined("car-b"))
        // The directory is back: the next poll writes it, and a restart reads it.
        try FileManager.default.createDirectory(at: gone, withIntermediateDirectories: false)
        _ = lost.reloadIfChanged()
        #expect(Self.trust(quarantines: gone.appendingPathComponent("quarantined").path).isQuarantined("car-b"))
        #expect(lost.isQuarantined("car-b"))
    }

    @Test("A line an editor left without its newline, Windows line ends and two writers at once (helper-77)")
    func fileShapes() throws {
        let dir = try RevocationPollTests.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quarantined").path
        try "vehicle car-a\r\n# ops\r\nvehicle car-b".write(toFile: file, atomically: true, encoding: .utf8)
        let trust = Self.trust(quarantines: file)
        #expect(trust.isQuarantined("car-a") && trust.isQuarantined("car-b"), "each CRLF line is a line")
        #expect(trust.quarantine("car-c", reason: "failed 2 of 2 audits"))
        let list = try RevocationList.load(path: file)
        #expect(list.vehicles == ["car-a", "car-b", "car-c"], "car-c on its own line, car-b intact")

        let shared = dir.appendingPathComponent("shared").path
        DispatchQueue.concurrentPerform(iterations: 8) { writer in
            for index in 0..<40 {
                _ = try? RevocationList.append(
                    ["vehicle w\(writer)-\(index)"], comment: "test", to: shared, mode: 0o600)
            }
        }
        #expect(try RevocationList.load(path: shared).vehicles.count == 320, "no line lost or torn")
    }

    @Test("An append that cannot be written throws and leaves nothing behind (a full disk: /dev/full)")
    func fullDisk() throws {
        #expect(throws: RevocationFileError.self) {
            try RevocationList.append(["vehicle car-z"], comment: "test", to: "/dev/full", mode: 0o600)
        }
    }

    @Test("A reload that read the file before the quarantine's line was written does not lift it (helper-77)")
    func staleReload() throws {
        let dir = try RevocationPollTests.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quarantined").path
        let trust = Self.trust(quarantines: file)
        // A poll begins reading the file (without the line), the quarantine is appended, the poll installs.
        let pollBegan = trust.quarantineAppends
        #expect(trust.quarantine("car-x", reason: "failed 2 of 2 audits"))
        trust.install(quarantines: RevocationList(), readAfter: pollBegan)
        #expect(trust.isQuarantined("car-x"), "a read from before its line: kept")
        try "vehicle car-x\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(trust.reloadIfChanged())
        try "# lifted\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(trust.reloadIfChanged())
        #expect(!trust.isQuarantined("car-x"), "seen, then deleted: lifted")
    }

    @Test("A line deleted before any poll read it still lifts the quarantine at the next read (helper-79)")
    func deletedBeforeAPoll() throws {
        let dir = try RevocationPollTests.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("quarantined").path
        let trust = Self.trust(quarantines: file)
        #expect(trust.quarantine("car-y", reason: "failed 2 of 2 audits"))
        // The operator deletes it at once: the next read began after the append, so it is believed.
        try "# lifted at once\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(trust.reloadIfChanged())
        #expect(!trust.isQuarantined("car-y"))
    }
}
