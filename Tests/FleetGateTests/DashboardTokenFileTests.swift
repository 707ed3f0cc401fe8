import FleetTesting
import Foundation
import Testing

@testable import FleetGate

@Suite("The generated dashboard token's file")
struct DashboardTokenFileTests {
    /// helper-70: a killed gateway's token file stayed, a live credential nobody used.
    @Test("A new gateway removes the files of gateways that are gone, not of those that run")
    func staleFilesRemoved() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-dash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A pid that has ended: a child that ran and was waited for.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try ChildLauncher.run(child)
        // Reaped, not only exited: a zombie's pid still answers kill(pid, 0) (helper-118).
        #expect(ChildExit.waitUntilReaped(child))
        let gone = "fleetgate-dashboard-\(child.processIdentifier)-ab12.token"
        let live = "fleetgate-dashboard-1-cd34.token"  // init runs
        let other = "unrelated-\(child.processIdentifier).token"
        for name in [gone, live, other] {
            try "token\n".write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let file = try DashboardTokenFile(token: "fresh-token", directory: dir.path)
        defer { file.remove() }
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        #expect(!left.contains(gone))
        #expect(left.contains(live) && left.contains(other))
        #expect(left.contains(URL(fileURLWithPath: file.path).lastPathComponent))
    }
}
