import FleetAgent
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetTesting
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One `fleet-load run`: starts a gateway (`fleetgate serve`, a child process), central capacity
/// and the fleet in this process, sends the planned load, applies churn on schedule, stops
/// everything it started, and writes `summary.json` and `report.html` into ``output``.
package struct HarnessRun {
    package var scenario: Scenario
    /// Where the job log, the gateway log, the summary and the report go.
    package var output: String
    /// The GeoIP database the gateway uses (client ranges are checked against it first).
    package var geoDatabase: String
    /// Harness event-loop threads for the cars (the clients get one of their own).
    package var carThreads = 1
    /// CPUs the gateway's threads are pinned to (a `taskset` list), e.g. `0` while the harness runs
    /// under `taskset -c 1`; nil: wherever the harness may run.
    package var gatewayCPUs: String?
    /// Progress lines (to standard error, unbuffered, so a log file has them as they happen).
    package var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    package init(scenario: Scenario, output: String, geoDatabase: String) {
        self.scenario = scenario
        self.output = output
        self.geoDatabase = geoDatabase
    }

    /// Fails with file:line when a client range does not map to its country in the gateway's database.
    package func checkOrigins() throws {
        let database: MaxMindDatabase
        do { database = try MaxMindDatabase(path: self.geoDatabase) } catch {
            throw HarnessError(
                "cannot open the GeoIP database \(self.geoDatabase) (scripts/setup.sh builds it): \(error)")
        }
        var problems: [String] = []
        for origin in self.scenario.clients.geo {
            for range in origin.ranges {
                guard let block = IPv4Block(range) else { continue }
                for offset in [0, block.hostMask / 2, block.hostMask] {
                    let text = block.address(offset)
                    let found = IPAddress(text).flatMap { database.country(of: $0) } ?? "none"
                    if found != origin.country {
                        problems.append(
                            "\(self.scenario.file):\(origin.line): clients.geo \(origin.country): range \(range): "
                                + "\(text) is \(found) in \(self.geoDatabase)")
                        break
                    }
                }
            }
        }
        if !problems.isEmpty { throw HarnessError(problems.joined(separator: "\n")) }
    }

    package func run() async throws -> Summary {
        try self.checkOrigins()
        let plan = RunPlan(scenario: self.scenario)
        try FileManager.default.createDirectory(atPath: self.output, withIntermediateDirectories: true)
        let jobLogPath = self.output + "/jobs.ndjson"
        try? FileManager.default.removeItem(atPath: jobLogPath)
        let loadBefore = ProcessSampler.loadAverage
        let started = ISO8601DateFormatter().string(from: Date())
        var logger = Logger(label: "fleet-load")
        logger.logLevel = .critical
        let carGroup = MultiThreadedEventLoopGroup(numberOfThreads: self.carThreads)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

        // Central capacity: a synthetic engine per region with the agent's real responder and job log.
        let centralLog = try JobLog(path: jobLogPath, region: "-", vehicleID: "-")
        var centralChannels: [any Channel] = []
        var arguments = [
            "--threads", "\(self.scenario.gateway.eventLoopThreads)", "--trusted-proxy", "127.0.0.0/8",
            "--geoip", self.geoDatabase,
        ]
        for central in self.scenario.central {
            let engine = SyntheticEngine(profile: .of(.ai5), slowdown: 0.5)
            let state = AgentState(
                initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0),
                slots: central.maxConcurrent)
            let responder = AgentResponder(
                engine: engine, state: state, hello: nil,
                jobLog: JobLog(sharing: centralLog, region: central.region, vehicleID: "central-\(central.region)"),
                logger: logger)
            let channel = try await HTTPServer.bind(host: "127.0.0.1", port: 0, group: carGroup, responder: responder)
            centralChannels.append(channel)
            arguments += ["--central", "\(central.region)=http://127.0.0.1:\(channel.localAddress!.port!)/v1"]
        }
        var tls: AgentConfiguration.TunnelTLS?
        if self.scenario.gateway.tunnelTLS {
            let (cert, key) = try await Self.makeCertificate(in: self.output)
            arguments += ["--tunnel-tls-cert", cert, "--tunnel-tls-key", key]
            tls = .init(caFile: cert, serverHostname: "localhost")
        }
        arguments += self.scenario.gateway.arguments

        self.log("fleet-load: starting fleetgate \(arguments.joined(separator: " "))")
        let gateway = try await GatewayProcess.start(
            arguments, environment: ["FLEETGATE_CACHE": Self.cacheDirectory])
        // Interrupted (Ctrl-C, SIGTERM from a timeout): the gateway must not outlive the harness.
        harnessGatewayPID = gateway.process.processIdentifier
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { received in
                if harnessGatewayPID > 0 { kill(harnessGatewayPID, SIGKILL) }
                _exit(128 + received)
            }
        }
        defer {
            harnessGatewayPID = 0
            gateway.stop()
            try? gateway.log.write(toFile: self.output + "/gateway.log", atomically: false, encoding: .utf8)
        }
        if let cpus = self.gatewayCPUs { try await Self.pin(pid: gateway.process.processIdentifier, cpus: cpus) }

        let fleet = try Fleet(
            plan: plan.cars, tunnelPort: gateway.tunnelPort, secret: FleetFixture.testSecret, group: carGroup,
            tls: tls, jobLogPath: jobLogPath, logger: logger)
        let (registered, idle) = try await self.startFleet(fleet, gateway: gateway)
        let sampler = ProcessSampler(pid: gateway.process.processIdentifier)
        let cpuBefore = ProcessSampler.cpuSeconds(pid: gateway.process.processIdentifier) ?? 0
        let client = LoadClient(
            host: "127.0.0.1", port: gateway.clientPort, group: clientGroup,
            connections: self.scenario.clients.connections, ttftObjective: self.scenario.clients.ttftObjectiveMilliseconds)
        let origin = NIODeadline.now() + .milliseconds(200)
        self.log(
            "fleet-load: sending \(plan.requests.count) requests over \(self.scenario.warmup + self.scenario.duration) s; "
                + "\(plan.churn.count) churn events")
        let carLag = LagSamples()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await sampler.run() }
            // The cars' own event loop: a 100 ms timer's lateness. Past the gateway's PING deadline
            // the cars look dead to it, and the run measures the harness, not the gateway.
            tasks.addTask {
                while !Task.isCancelled {
                    let loop = carGroup.next()
                    let asked = NIODeadline.now()
                    let fired = try await loop.scheduleTask(in: .milliseconds(100)) { NIODeadline.now() }.futureResult.get()
                    carLag.values.withLock { $0.append(Int(max(0, (fired - asked).nanoseconds - 100_000_000) / 1000)) }
                }
            }
            tasks.addTask {
                for event in plan.churn {
                    let due = origin + .nanoseconds(Int64(event.at * 1e9))
                    let wait = due - .now()
                    if wait.nanoseconds > 0 { try await Task.sleep(nanoseconds: UInt64(wait.nanoseconds)) }
                    fleet.apply(event, now: event.at)
                }
                try await Task.sleep(for: .seconds(3_600))
            }
            try await client.run(plan.requests, origin: origin)
            await client.drain(timeout: .seconds(60))
            tasks.cancelAll()
        }
        let cpu = (ProcessSampler.cpuSeconds(pid: gateway.process.processIdentifier) ?? cpuBefore) - cpuBefore
        client.close()
        await fleet.stopAll()
        gateway.stop()
        let records = (try? JobLog.read(path: jobLogPath)) ?? []
        // Every request's result beside its plan entry, for looking into a failed check.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines = Data()
        for result in client.completed.sorted(by: { $0.index < $1.index }) {
            let request = plan.requests[result.index]
            lines.append(contentsOf: Data("{\"id\":\"\(request.id)\",\"country\":\"\(request.country)\",\"max_tokens\":\(request.maxTokens),\"streaming\":\(request.streaming),\"cancel_after\":\(request.cancelAfter.map(String.init) ?? "null"),\"result\":".utf8))
            lines.append((try? encoder.encode(result)) ?? Data("null".utf8))
            lines.append(contentsOf: Data("}\n".utf8))
        }
        try lines.write(to: URL(fileURLWithPath: self.output + "/requests.ndjson"))
        let analysis = Analysis(
            scenario: self.scenario, plan: plan, results: client.completed, records: records, gateway: sampler.all,
            gatewayCPUSeconds: cpu,
            churn: fleet.applied.withLock { $0.map { .init(t: $0.at, kind: $0.kind, car: $0.car) } },
            carsRegistered: registered, started: started, loadAverage: [loadBefore, ProcessSampler.loadAverage])
        for channel in centralChannels { try? await channel.close() }
        try? await carGroup.shutdownGracefully()
        try? await clientGroup.shutdownGracefully()
        var finished = analysis
        finished.idleMemory = idle
        finished.carLoopLagMicros = carLag.values.withLock { $0 }
        let summary = finished.summary()
        try SummaryFiles.write(summary, to: self.output)
        return summary
    }

    /// `~/.cache/fleetgate` (or `FLEETGATE_CACHE`).
    package static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["FLEETGATE_CACHE"] ?? (environment["HOME"] ?? "/root") + "/.cache/fleetgate"
    }

    /// Cars registered (`/readyz` on the admin port), once every car is or the count stops growing.
    static func waitForCars(_ gateway: GatewayProcess, _ count: Int, timeout: Duration) async throws -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = -1
        var stableSince = clock.now
        while clock.now < deadline {
            guard gateway.isRunning else { throw HarnessError("fleetgate exited: \(gateway.status)") }
            let body = (try? await gateway.get("/readyz", admin: true).body) ?? ""
            let cars = body.split(separator: "\"cars\":").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
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

    /// A self-signed certificate for `localhost` (the cars trust it as their CA), made with openssl.
    static func makeCertificate(in directory: String) async throws -> (String, String) {
        let cert = directory + "/tunnel-cert.pem", key = directory + "/tunnel-key.pem"
        let result = try await Subprocess.run(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert,
            ])
        guard result.status == 0 else { throw HarnessError("openssl could not make a certificate: \(result.stderr)") }
        return (cert, key)
    }
}

/// A harness failure, said in one sentence.
package struct HarnessError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Lateness samples of the cars' event loop, shared with the task that takes them.
private final class LagSamples: Sendable {
    let values = Mutex<[Int]>([])
}

/// The running gateway's pid, for the signal handler (async-signal-safe: a plain global read).
nonisolated(unsafe) private var harnessGatewayPID: Int32 = 0
