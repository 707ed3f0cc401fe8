public import Foundation
import Synchronization

/// Runs external tools (curl, nghttp, h2load, python) from tests.
public enum Subprocess {
    /// The result of a run.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Finds an executable on PATH (and in /usr/sbin, where Debian puts nghttpd and nghttpx).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/usr/local/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `tool` with `arguments` and waits, failing if it is not installed (the README's test command installs it).
    ///
    /// Past `timeout` the tool gets SIGTERM, and SIGKILL 5 s later. Neither its exit nor its output's end is
    /// waited for without bound: a tool that has not exited 15 s after its timeout, or whose pipes stay open
    /// 5 s after its exit (another process holds them), gives status -1 and says so in `stderr`, and the test
    /// fails by name instead of hanging the run (CI of 353c632 ran into its 5,400 s with no test named).
    public static func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 60) async throws -> Result {
        guard let path = self.which(tool) else { throw MissingTool(name: tool) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let (out, err) = try ChildLauncher.run(process) { process in
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            return (out, err)
        }
        // Each pipe is read to EOF by its own blocking read, and the result is built only when both
        // reads and the exit are done. (A `readabilityHandler` could still be appending a chunk it
        // had read when the exit handler resumed, so a tool's whole output was sometimes lost: CI
        // once saw nghttp exit 0 with an empty stdout.)
        let stdout = Self.readToEnd(out.fileHandleForReading)
        let stderr = Self.readToEnd(err.fileHandleForReading)
        let timer = DispatchWorkItem { if ChildExit.status(of: process) == nil { Self.terminate(process) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        defer { timer.cancel() }
        guard let status = await ChildExit.exit(of: process, timeout: .seconds(timeout + 15)) else {
            // The task was cancelled (its test's time limit), or the tool outlived even its SIGKILL.
            if Task.isCancelled {
                Self.terminate(process)
                return Result(status: -1, stdout: "", stderr: "\(tool) was stopped: its task was cancelled")
            }
            return Result(
                status: -1, stdout: "", stderr: "\(tool) did not exit \(Int(timeout) + 15) s after it started")
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while stdout.data == nil || stderr.data == nil, ContinuousClock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(2)) } catch { break }
        }
        guard let outData = stdout.data, let errData = stderr.data else {
            return Result(
                status: -1, stdout: "", stderr: "\(tool) exited \(status), but its output was still open 5 s later")
        }
        return Result(
            status: status, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// SIGTERM now, and SIGKILL `killAfter` seconds later if `process` has not exited by then.
    private static func terminate(_ process: Process, killAfter: TimeInterval = 5) {
        process.terminate()
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + killAfter) {
            if ChildExit.status(of: process) == nil { kill(pid, SIGKILL) }
        }
    }

    /// What a pipe gave until its EOF: nil until then.
    private final class Output: Sendable {
        private let box = Mutex<Data?>(nil)
        var data: Data? { self.box.withLock { $0 } }
        func finish(_ data: Data) { self.box.withLock { $0 = data } }
    }

    /// Reads `handle` to EOF on a thread of its own (the read blocks).
    private static func readToEnd(_ handle: FileHandle) -> Output {
        let output = Output()
        Thread.detachNewThread { output.finish(handle.readDataToEndOfFile()) }
        return output
    }

    /// Stops a long-running helper (a server a test started): SIGTERM, SIGKILL if it is still
    /// there after `grace`, then waits for its exit (10 s at most) — so no test leaves a server behind.
    public static func stop(_ process: Process, grace: TimeInterval = 3) {
        guard ChildExit.status(of: process) == nil else { return }
        process.terminate()
        if ChildExit.wait(for: process, timeout: grace) == nil { kill(process.processIdentifier, SIGKILL) }
        ChildExit.wait(for: process)
    }

    /// A tool the tests need is not installed.
    public struct MissingTool: Error, CustomStringConvertible {
        public var name: String
        public var description: String {
            "\(self.name) is not installed; run the README's test command (scripts/test.sh) to install it"
        }
    }
}
