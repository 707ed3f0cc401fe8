public import Foundation
import NIOCore
import NIOPosix

/// A real OpenAI-compatible inference runtime for tests: llama-cpp-python's server running
/// SmolLM2-135M-Instruct, the stack `scripts/setup.sh` installs (the Python in
/// `FLEETGATE_PYTHON`, the model file in `FLEETGATE_MODEL`).
///
/// One thread, as on a busy 2-core machine llama.cpp with 2 threads crawls, and one request at a
/// time (the server aborts a running request when another arrives), so the agent in front of
/// it advertises one slot.
public final class LocalRuntime: Sendable {
    /// The model id the runtime serves.
    public static let model = "smollm2-135m"
    /// The RAM prompt cache `start(promptCache: true)` and `scripts/real-model.sh` give the server,
    /// and the conversations it holds (~25 MB of state per 1,000-token conversation of SmolLM2-135M).
    public static let promptCacheBytes = 512 << 20
    public static let promptCacheSequences = 16
    /// `http://127.0.0.1:<port>/v1`.
    public let baseURL: String
    /// The server's process id (its CPU time is read from /proc to prove cancellation stops it).
    public let pid: Int32
    private let process: Process

    /// The runtime is not installed: with `CI=true` this is a failure, otherwise tests may skip.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// Whether `CI=true`, when a missing runtime must fail the test.
    public static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Starts the server on a free loopback port and waits until it lists its model.
    /// - Parameter promptCache: keep a RAM prompt cache (`--cache true`, 512 MiB), as
    ///   `scripts/real-model.sh` does, so earlier conversations' prefixes are reused (issue #14).
    public static func start(timeout: Duration = .seconds(60), promptCache: Bool = false) async throws -> LocalRuntime {
        let env = ProcessInfo.processInfo.environment
        guard let python = env["FLEETGATE_PYTHON"], FileManager.default.isExecutableFile(atPath: python) else {
            throw Unavailable(
                description: "FLEETGATE_PYTHON is not set; run the README's test command (scripts/test.sh)")
        }
        guard let model = env["FLEETGATE_MODEL"], FileManager.default.fileExists(atPath: model) else {
            throw Unavailable(description: "FLEETGATE_MODEL is not set or missing; run scripts/setup.sh")
        }
        let port = try freeLoopbackPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments =
            [
                "-m", "llama_cpp.server", "--model", model, "--model_alias", Self.model, "--host", "127.0.0.1",
                "--port", String(port), "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", "2048",
            ]
            + (promptCache
                ? ["--cache", "true", "--cache_type", "ram", "--cache_size", String(Self.promptCacheBytes)] : [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try ChildLauncher.run(process)
        let runtime = LocalRuntime(baseURL: "http://127.0.0.1:\(port)/v1", process: process)
        do {
            try await waitUntil(timeout: timeout, "llama-cpp-python server on port \(port)") {
                guard process.isRunning else { throw Unavailable(description: "llama_cpp.server exited at start") }
                let result = try? await Subprocess.run("curl", ["-sf", "--max-time", "1", runtime.baseURL + "/models"])
                return result?.status == 0 && (result?.stdout.contains(Self.model) ?? false)
            }
        } catch {
            runtime.stop()
            throw error
        }
        return runtime
    }

    private init(baseURL: String, process: Process) {
        self.baseURL = baseURL
        self.process = process
        self.pid = process.processIdentifier
    }

    /// Stops the server: SIGTERM, then SIGKILL if it is still there after 3 s (uvicorn waits for
    /// keep-alive connections that a pooled HTTP client may hold open).
    public func stop() {
        Subprocess.stop(self.process)
    }

    /// A runtime nobody stopped (its test threw between two starts, helper-118) is stopped when released.
    deinit { self.stop() }

    /// User + system CPU seconds the server has used (from /proc/<pid>/stat).
    public func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(self.pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return 0 }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A free TCP port on loopback (bound and released; a small race is acceptable in tests).
public func freeLoopbackPort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0)
        .wait()
    let port = channel.localAddress!.port!
    try channel.close().wait()
    return port
}
