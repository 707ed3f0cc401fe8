import FleetTesting
import Foundation
import Testing

/// CI of 353c632 hung until its 5,400 s limit with no test named: Foundation's `Process` learns of an exit
/// from a socket that any process holding a copy keeps open, and `Subprocess.run` read its pipes to EOF
/// without a bound.
@Suite("Children: an exit is seen and a run ends, whatever else holds their descriptors")
struct ChildExitTests {
    /// A shell that leaves a `sleep` behind (its output elsewhere) and exits 7; the sleep's pid.
    static func shellLeavingSleep() throws -> (shell: Process, sleep: Int32) {
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "sleep 60 >/dev/null 2>&1 & echo $!; exit 7"]
        let out = try ChildLauncher.run(shell) { shell in
            let out = Pipe()
            shell.standardOutput = out
            return out
        }
        let pid = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (shell, try #require(Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines))))
    }

    @Test("A child's exit is seen while a process it left holds Foundation's exit socket")
    func exitSeenPastGrandchild() throws {
        let (shell, sleep) = try Self.shellLeavingSleep()
        defer { kill(sleep, SIGKILL) }
        #expect(ChildExit.wait(for: shell, timeout: 20) == 7)
        // Foundation still waits for its socket's EOF, which the sleep holds: waitUntilExit() would wait a minute.
        #expect(shell.isRunning)
        kill(sleep, SIGKILL)
        #expect(ChildExit.wait(for: shell, timeout: 20) == 7)
    }

    @Test("A tool whose output a process it left keeps open ends its run 5 s after its exit, saying why")
    func runEndsPastHeldPipe() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("child-exit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await Subprocess.run("sh", ["-c", "sleep 60 & echo $! > \(file); echo hi"])
        let pid = Int32(
            (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        if let pid { kill(pid, SIGKILL) }
        #expect(pid != nil)
        #expect(result.status == -1)
        // The message is the proof it gave up: a run that waited for the pipe's EOF (the sleep's minute) has none.
        #expect(result.stderr.contains("its output was still open 5 s later"), "\(result.stderr)")
    }

    @Test("A tool's status and output, as before")
    func runAsBefore() async throws {
        let result = try await Subprocess.run("sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(result.status == 3)
        #expect(result.stdout == "out\n" && result.stderr == "err\n")
    }

    @Test("A child blocks no signal, though started from a Swift concurrency thread, which blocks most")
    func childSignalMask() async throws {
        let result = try await Subprocess.run("grep", ["SigBlk", "/proc/self/status"])
        #expect(result.stdout.hasSuffix("0000000000000000\n"), "\(result.stdout)")
    }

    @Test("A tool past its timeout ends at its SIGTERM, not at the SIGKILL 5 s later")
    func timeoutStopsTool() async throws {
        let result = try await Subprocess.run("sh", ["-c", "exec sleep 60"], timeout: 1)
        // With SIGTERM blocked (the old launcher) the status was SIGKILL's. No time is asserted: CI's parallel
        // unit run once took 10.7 s for this on a loaded machine.
        #expect(result.status == SIGTERM)
    }
}
