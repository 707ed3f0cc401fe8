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
        return try await withCheckedThrowingContinuation { continuation in
            let outData = DataBox(), errData = DataBox()
            out.fileHandleForReading.readabilityHandler = { h in outData.append(h.availableData) }
            err.fileHandleForReading.readabilityHandler = { h in errData.append(h.availableData) }
            process.terminationHandler = { p in
                out.fileHandleForReading.readabilityHandler = nil
                err.fileHandleForReading.readabilityHandler = nil
                outData.append(out.fileHandleForReading.readDataToEndOfFile())
                errData.append(err.fileHandleForReading.readDataToEndOfFile())
                continuation.resume(
                    returning: Result(status: p.terminationStatus, stdout: outData.string, stderr: errData.string))
            }
            do { try process.run() } catch { continuation.resume(throwing: error) }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                if process.isRunning { process.terminate() }
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

private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ d: Data) { self.lock.lock(); self.data.append(d); self.lock.unlock() }
    var string: String {
        self.lock.lock(); defer { self.lock.unlock() }; return String(decoding: self.data, as: UTF8.self)
    }
}
