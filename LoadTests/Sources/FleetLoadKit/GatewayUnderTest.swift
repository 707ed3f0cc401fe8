import FleetGeo
import FleetTesting
import Foundation
import HTTPTypes

/// The gateway a run drives: one the harness started (a ``GatewayProcess``), or one already
/// running on loopback (``HarnessTarget``). Its ports, its pid (for CPU and RSS) and its car count.
struct GatewayUnderTest {
    /// The process the harness started (nil with `--target`: the harness never stops that one).
    var process: GatewayProcess?
    var host: String
    var clientPort: Int
    var tunnelPort: Int
    var adminPort: Int
    var pid: Int32?
    /// Cars the gateway had before the harness's fleet dialled (another fleet on a target).
    var carsBefore = 0

    init(process: GatewayProcess) {
        self.process = process
        self.host = "127.0.0.1"
        self.clientPort = process.clientPort
        self.tunnelPort = process.tunnelPort
        self.adminPort = process.adminPort
        self.pid = process.process.processIdentifier
    }

    /// A running gateway: its admin port must answer `/readyz` (fails early and says so otherwise).
    static func attach(_ target: HarnessTarget) async throws -> GatewayUnderTest {
        guard let cars = await Self.readyCars(adminPort: target.adminPort) else {
            throw HarnessError(
                "no gateway answered GET /readyz on its admin port 127.0.0.1:\(target.adminPort): start it with "
                    + "--admin-port \(target.adminPort), or give fleet-load --admin-port")
        }
        return GatewayUnderTest(
            process: nil, host: target.host, clientPort: target.clientPort, tunnelPort: target.tunnelPort,
            adminPort: target.adminPort, pid: HarnessTarget.listeningPID(port: target.clientPort), carsBefore: cars)
    }

    private init(
        process: GatewayProcess?, host: String, clientPort: Int, tunnelPort: Int, adminPort: Int, pid: Int32?,
        carsBefore: Int
    ) {
        self.process = process
        self.host = host
        self.clientPort = clientPort
        self.tunnelPort = tunnelPort
        self.adminPort = adminPort
        self.pid = pid
        self.carsBefore = carsBefore
    }

    /// How it ended when it is no longer running (`exit N` / `signal N`, or `gone` for a
    /// target whose pid vanished); nil while it runs or when there is no pid to watch.
    var ended: String? {
        if let process = self.process?.process {
            guard !process.isRunning else { return nil }
            let how = process.terminationReason == .uncaughtSignal ? "signal" : "exit"
            return "\(how) \(process.terminationStatus), its log in gateway.log"
        }
        guard let pid = self.pid else { return nil }
        return kill(pid, 0) == 0 || errno == EPERM ? nil : "gone (pid \(pid))"
    }

    /// Its resident set now, bytes.
    var resident: Int? { self.pid.flatMap { ProcessSampler.residentBytes(pid: $0) } }

    /// `"cars":N` of `/readyz` on the admin port; nil when it does not answer.
    static func readyCars(adminPort: Int) async -> Int? {
        guard let client = try? await RecordingClient.connect(port: adminPort) else { return nil }
        defer { client.close() }
        let request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/readyz")
        guard let result = try? await client.send(request, body: nil).collect(), result.response != nil else {
            return nil
        }
        return result.body.split(separator: "\"cars\":").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
    }

    /// The harness's cars registered (`/readyz` on the admin port, less those there before), once
    /// every car is or the count stops growing for 10 s.
    func waitForCars(_ count: Int, timeout: Duration) async throws -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = -1
        var stableSince = clock.now
        while clock.now < deadline {
            if let process = self.process, !process.isRunning {
                throw HarnessError("fleetgate exited: \(process.status)")
            }
            let cars = max(0, (await Self.readyCars(adminPort: self.adminPort) ?? 0) - self.carsBefore)
            if cars >= count { return cars }
            if cars != last {
                last = cars
                stableSince = clock.now
            } else if (clock.now - stableSince) > .seconds(10) {
                return cars
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        return max(0, last)
    }
}
