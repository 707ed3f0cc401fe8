public import Foundation

/// An `etcd` server (Debian `etcd-server`) on loopback for the cluster tests (issue #21): its own
/// data directory and two free loopback ports; stopped with `kill -9` and restarted on the same
/// directory and ports, as an outage would.
public final class EtcdProcess: @unchecked Sendable {
    /// `http://127.0.0.1:<client port>`.
    public let clientURL: String
    let dataDirectory: String
    let clientPort: Int
    let peerPort: Int
    private var process: Process?

    /// Starts etcd and waits until it answers.
    /// - Throws: ``Subprocess/MissingTool`` when `etcd` is not installed (scripts/setup.sh installs it).
    public static func start() async throws -> EtcdProcess {
        let etcd = EtcdProcess(clientPort: try freeLoopbackPort(), peerPort: try freeLoopbackPort())
        try await etcd.launch()
        return etcd
    }

    private init(clientPort: Int, peerPort: Int) {
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.clientURL = "http://127.0.0.1:\(clientPort)"
        self.dataDirectory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("fleet-etcd-\(UUID().uuidString)").path
    }

    /// (Re)starts the server on the same data directory and ports; waits until it answers.
    public func launch() async throws {
        guard let path = Subprocess.which("etcd") else { throw Subprocess.MissingTool(name: "etcd (etcd-server)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        let peer = "http://127.0.0.1:\(self.peerPort)"
        process.arguments = [
            "--name", "fleet-test", "--data-dir", self.dataDirectory,
            "--listen-client-urls", self.clientURL, "--advertise-client-urls", self.clientURL,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "fleet-test=\(peer)", "--log-level", "error",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildLauncher.run(process)
        self.process = process
        try await waitUntil(timeout: .seconds(20), "etcd answering") {
            guard process.isRunning else { throw Subprocess.MissingTool(name: "a working etcd (it exited)") }
            return (try? await self.metrics())?["etcd_server_has_leader"] == 1
        }
    }

    /// `kill -9`.
    public func kill9() {
        guard let process = self.process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        ChildExit.wait(for: process)
    }

    /// Its Prometheus metrics (`/metrics`), name (with labels) → value.
    public func metrics() async throws -> [String: Double] {
        let result = try await Subprocess.run("curl", ["-sf", "--max-time", "2", self.clientURL + "/metrics"])
        var values: [String: Double] = [:]
        for line in result.stdout.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            values[String(line[..<space])] = value
        }
        return values
    }

    /// Stops it and removes its data directory.
    public func stop() {
        self.kill9()
        try? FileManager.default.removeItem(atPath: self.dataDirectory)
    }

    deinit { self.stop() }
}
