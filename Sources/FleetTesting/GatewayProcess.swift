import FleetGate
public import Foundation
import HTTPTypes
import Synchronization

/// A `fleetgate serve` process on loopback, every port picked by the kernel.
///
/// For tests whose failure mode is the gateway dying: a trap in an in-process gateway
/// (``withFleet``) would take the whole test runner down with it, while a child process that dies
/// is an ordinary, reported failure. Also what the crash reproducers run against a release build:
/// `FLEETGATE_BINARY=.build/release/fleetgate swift test --skip-build --filter HostilePeerTests`.
///
/// The binary is `FLEETGATE_BINARY` when set, else the `fleetgate` built beside the test bundle
/// (`swift build --build-tests` builds it). Its log goes to ``log`` (info level, so the audit and
/// "Car rejected" lines are there); the ports are read from its "Listening" lines.
public final class GatewayProcess {
    /// The child process.
    public let process: Process
    /// The client port (h2c and HTTP/1.1).
    public let clientPort: Int
    /// The car tunnel port (cleartext on loopback).
    public let tunnelPort: Int
    /// The admin port.
    public let adminPort: Int
    /// Every listener's port by name (`internal`: the cluster listener, issue #21).
    public let ports: [String: Int]
    private let output: LogBuffer
    /// Kept for the process's life: its read end carries the readability handler.
    private let pipe: Pipe

    /// `http://127.0.0.1:<client port>`.
    public var baseURL: String { "http://127.0.0.1:\(self.clientPort)" }

    /// The binary tests run: `FLEETGATE_BINARY`, or `fleetgate` beside the test bundle.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["FLEETGATE_BINARY"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let beside = bundle.appendingPathComponent("fleetgate").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : ".build/debug/fleetgate"
    }

    /// Starts `fleetgate serve` with ports 0, the test fleet secret and `arguments`, and waits
    /// until its listeners are bound.
    /// - Parameter environment: more variables, such as `FLEETGATE_AUTH_API_KEYS` (secrets are never flags).
    /// - Throws: ``TimeoutError`` (with the log) when it does not come up, or when it exits first.
    public static func start(
        _ arguments: [String] = [], environment extra: [String: String] = [:], timeout: Duration = .seconds(30)
    ) async throws -> GatewayProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        // The defaults, each left out when `arguments` gives it (a key given twice is refused).
        let defaults = [
            ("--client-port", "0"), ("--tunnel-port", "0"), ("--admin-port", "0"), ("--log-level", "info"),
            ("--tunnel-auth", "token"),  // #20: tests default to tokens
        ]
        process.arguments =
            ["serve"] + defaults.filter { !arguments.contains($0.0) }.flatMap { [$0.0, $0.1] } + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["FLEETGATE_FLEET_SECRET"] = FleetFixture.testSecret
        environment["FLEETGATE_CACHE"] = "/nonexistent-fleetgate-cache"  // no GeoIP database: loopback is 'private'
        // Lag shedding off unless a test asks for it, as withFleet runs its gateway: a debug gateway on a busy
        // machine shed honest requests in two hostile-peer tests, which took the 503 for a failure.
        environment["FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS"] = "0"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = LogBuffer()
        process.standardInput = FileHandle.nullDevice
        let pipe = try ChildLauncher.run(process) { process in
            let pipe = Pipe()  // made on the launcher thread (ChildLauncher)
            process.standardError = pipe
            process.standardOutput = pipe
            process.terminationHandler = { _ in
                pipe.fileHandleForReading.readabilityHandler = nil
                output.append(pipe.fileHandleForReading.readDataToEndOfFile())  // the trap's message, if any
            }
            return pipe
        }
        // Set once the process runs (a FileHandle released with its handler set crashes libdispatch on
        // Linux, so not before a start that can fail), and cleared at EOF and at exit (Subprocess.run
        // does the same): one left spinning at EOF crashes it too. What the gateway wrote meanwhile waits
        // in the pipe.
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { output.append(data) }
        }
        var ports: [String: Int] = [:]
        do {
            try await waitUntil(timeout: timeout, "fleetgate listening") {
                guard process.isRunning else {
                    // The termination handler reads the pipe's last bytes on its own queue: give it a moment,
                    // so the error carries the process's last lines (its reason to exit).
                    try await Task.sleep(for: .milliseconds(200))
                    throw GatewayExited(log: output.text)
                }
                ports = Self.ports(in: output.text)
                return ports["client"] != nil && ports["tunnel"] != nil && ports["admin"] != nil
                    && (!arguments.contains("--etcd") || ports["internal"] != nil)
            }
        } catch {
            Subprocess.stop(process)
            pipe.fileHandleForReading.readabilityHandler = nil
            throw error
        }
        return GatewayProcess(
            process: process, pipe: pipe, clientPort: ports["client"] ?? 0, tunnelPort: ports["tunnel"] ?? 0,
            adminPort: ports["admin"] ?? 0, ports: ports, output: output)
    }

    private init(
        process: Process, pipe: Pipe, clientPort: Int, tunnelPort: Int, adminPort: Int, ports: [String: Int],
        output: LogBuffer
    ) {
        self.ports = ports
        self.process = process
        self.pipe = pipe
        self.clientPort = clientPort
        self.tunnelPort = tunnelPort
        self.adminPort = adminPort
        self.output = output
    }

    deinit {
        Subprocess.stop(self.process)
        self.pipe.fileHandleForReading.readabilityHandler = nil
    }

    /// Listener name → port, from lines like `… fleet.address=[IPv4]127.0.0.1/127.0.0.1:PORT fleet.listener=NAME … Listening`.
    static func ports(in log: String) -> [String: Int] {
        var ports: [String: Int] = [:]
        for line in log.split(separator: "\n") where line.contains("Listening") {
            let fields = line.split(separator: " ")
            guard let name = fields.first(where: { $0.hasPrefix("fleet.listener=") })?.dropFirst(15),
                let address = fields.first(where: { $0.hasPrefix("fleet.address=") }),
                let port = address.split(separator: ":").last.flatMap({ Int($0) })
            else { continue }
            ports[String(name)] = port
        }
        return ports
    }

    /// Whether the process is still running.
    public var isRunning: Bool { self.process.isRunning }

    /// How it ended, for failure messages: `running`, or `exit N` / `signal N` (4 = SIGILL, a Swift
    /// trap) with the trap's message from the log.
    public var status: String {
        if self.process.isRunning { return "running" }
        let how = self.process.terminationReason == .uncaughtSignal ? "signal" : "exit"
        let lines = self.log.split(separator: "\n")
        let trap = lines.firstIndex { $0.contains("Fatal error") || $0.contains("failed:") || $0.contains("crashed") }
        let context = trap.map { lines[$0..<min(lines.count, $0 + 3)] } ?? lines.suffix(5)
        return "\(how) \(self.process.terminationStatus): " + context.joined(separator: " | ").prefix(600)
    }

    /// Everything it logged so far (the last 1 MiB).
    public var log: String { self.output.text }

    /// Its resident set now and at its peak (`VmRSS`, `VmHWM` in `/proc/PID/status`), in bytes.
    public var memory: (resident: Int, peak: Int)? {
        guard
            let status = try? String(contentsOfFile: "/proc/\(self.process.processIdentifier)/status", encoding: .utf8)
        else { return nil }
        func kilobytes(_ key: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) }
        }
        guard let resident = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else { return nil }
        return (resident * 1024, peak * 1024)
    }

    /// A token for `vehicleID` in `region`, under the test fleet secret.
    public func credential(vehicleID: String, region: String = "eu-central") throws -> String {
        try FleetCredentials(secret: FleetFixture.testSecret).issue(
            vehicleID: vehicleID, regions: [region], expires: Date().addingTimeInterval(3600))
    }

    /// `GET path` over h2c on the client port (or the admin port); the status and body.
    public func get(_ path: String, admin: Bool = false, apiKey: String? = nil) async throws
        -> (status: Int, body: String)
    {
        let client = try await RecordingClient.connect(port: admin ? self.adminPort : self.clientPort)
        defer { client.close() }
        var request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: path)
        request.headerFields[.authorization] = apiKey.map { "Bearer \($0)" }
        let result = try await client.send(request, body: nil).collect()
        return (result.response?.status.code ?? 0, result.body)
    }

    /// Waits until `count` cars have tunnels (`/readyz` on the admin port).
    public func waitForCars(_ count: Int, timeout: Duration = .seconds(10)) async throws {
        try await waitUntil(timeout: timeout, "\(count) cars connected to fleetgate") {
            guard self.isRunning else { throw GatewayExited(log: self.log) }
            let body = try await self.get("/readyz", admin: true).body
            return body.contains("\"cars\":\(count)}") || body.contains("\"cars\":\(count),")
        }
    }

    /// `kill -9`: no drain, no deregistration.
    public func kill9() {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGKILL)
        ChildExit.wait(for: self.process)
    }

    /// Stops it: SIGTERM, then SIGKILL after a grace period.
    public func stop() { Subprocess.stop(self.process) }

    /// The gateway exited before it was listening.
    public struct GatewayExited: Error, CustomStringConvertible {
        public var log: String
        public var description: String { "fleetgate exited while starting:\n\(self.log.suffix(4_000))" }
    }
}

/// The child's output, kept to its last 1 MiB.
private final class LogBuffer: Sendable {
    private let bytes = Mutex<[UInt8]>([])

    func append(_ data: Data) {
        self.bytes.withLock {
            $0.append(contentsOf: data)
            if $0.count > 1 << 20 { $0.removeFirst($0.count - (1 << 20)) }
        }
    }

    var text: String { self.bytes.withLock { String(decoding: $0, as: UTF8.self) } }
}
