public import Foundation

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
    public static func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 60) async throws -> Result {
        guard let path = self.which(tool) else { throw MissingTool(name: tool) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Each pipe is read to EOF by its own blocking read, and the result is built only when both
        // reads and the exit are done. (A `readabilityHandler` could still be appending a chunk it
        // had read when the exit handler resumed, so a tool's whole output was sometimes lost: CI
        // once saw nghttp exit 0 with an empty stdout.)
        let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        defer { timer.cancel() }
        async let stdout = Self.readToEnd(out.fileHandleForReading)
        async let stderr = Self.readToEnd(err.fileHandleForReading)
        let (outData, errData) = await (stdout, stderr)
        let status = await Self.waitForExit(process)
        return Result(
            status: status, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Reads `handle` to EOF on a thread of its own (the read blocks).
    private static func readToEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: handle.readDataToEndOfFile()) }
        }
    }

    /// Waits for `process` to exit without blocking a cooperative thread.
    private static func waitForExit(_ process: Process) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }

    /// Stops a long-running helper (a server a test started): SIGTERM, SIGKILL if it is still
    /// there after `grace`, then reaps it — so no test leaves a server behind.
    public static func stop(_ process: Process, grace: TimeInterval = 3) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// A tool the tests need is not installed.
    public struct MissingTool: Error, CustomStringConvertible {
        public var name: String
        public var description: String {
            "\(self.name) is not installed; run the README's test command (scripts/test.sh) to install it"
        }
    }
}
