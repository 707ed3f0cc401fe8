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
    /// A gateway already running on loopback to drive instead of starting one.
    package var target: HarnessTarget?
    /// Whether the cars' tunnels emulate their links (delay, jitter, bandwidth).
    package var emulateLinks = true
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
        if self.target != nil && self.scenario.gateway.tunnelTLS {
            throw HarnessError(
                "--target with tunnel TLS is not supported: the cars would need the running gateway's CA; "
                    + "give it a cleartext tunnel port on loopback")
        }
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
        if self.scenario.clients.originVia == .proxyV2 { arguments += ["--proxy-protocol-from", "127.0.0.0/8"] }
        if let target = self.target, !self.scenario.central.isEmpty, target.centralPort == nil {
            let flags = self.scenario.central.enumerated().map {
                "--central \($0.element.region)=http://127.0.0.1:P+\($0.offset)/v1"
            }
            throw HarnessError(
                "\(self.scenario.file): the scenario has central capacity: give --central-port P and start the gateway "
                    + "with \(flags.joined(separator: " "))")
        }
        for (i, central) in self.scenario.central.enumerated() {
            let engine = SyntheticEngine(profile: .of(.ai5), slowdown: 0.5)
            let state = AgentState(
                initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0),
                slots: central.maxConcurrent)
            let responder = AgentResponder(
                engine: engine, state: state, hello: nil,
                jobLog: JobLog(sharing: centralLog, region: central.region, vehicleID: "central-\(central.region)"),
                logger: logger)
            let port = self.target?.centralPort.map { $0 + i } ?? 0
            let channel: any Channel
            do {
                channel = try await HTTPServer.bind(
                    host: "127.0.0.1", port: port, group: carGroup, responder: responder)
            } catch {
                throw HarnessError("cannot serve central capacity for \(central.region) on 127.0.0.1:\(port): \(error)")
            }
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

        let gateway: GatewayUnderTest
        if let target = self.target {
            gateway = try await GatewayUnderTest.attach(target)
            self.log(
                "fleet-load: driving the gateway at \(target.host):\(target.clientPort) (tunnels :\(target.tunnelPort), "
                    + "admin :\(target.adminPort), pid \(gateway.pid.map(String.init) ?? "unknown: no CPU or RSS samples"))"
            )
        } else {
            self.log("fleet-load: starting fleetgate \(arguments.joined(separator: " "))")
            let process = try await GatewayProcess.start(
                arguments, environment: ["FLEETGATE_CACHE": Self.cacheDirectory])
            gateway = GatewayUnderTest(process: process)
            // Interrupted (Ctrl-C, SIGTERM from a timeout): the gateway must not outlive the harness.
            harnessGatewayPID = process.process.processIdentifier
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig) { received in
                    if harnessGatewayPID > 0 { kill(harnessGatewayPID, SIGKILL) }
                    _exit(128 + received)
                }
            }
        }
        defer {
            if let process = gateway.process {
                harnessGatewayPID = 0
                process.stop()
                try? process.log.write(toFile: self.output + "/gateway.log", atomically: false, encoding: .utf8)
            }
        }
        if let cpus = self.gatewayCPUs, let pid = gateway.pid { try await Self.pin(pid: pid, cpus: cpus) }

        let fleet = try Fleet(
            plan: plan.cars, tunnelHost: gateway.host, tunnelPort: gateway.tunnelPort,
            secret: FleetFixture.testSecret, group: carGroup, tls: tls, jobLogPath: jobLogPath, logger: logger,
            emulateLinks: self.emulateLinks)
        let (registered, idle) = try await self.startFleet(fleet, gateway: gateway)
        if registered == 0 && !plan.cars.isEmpty {
            await fleet.stopAll()
            throw HarnessError(
                "none of the \(plan.cars.count) cars registered with the gateway (tunnel port \(gateway.tunnelPort)): "
                    + "their hellos were rejected or never answered. The gateway must accept token-authenticated "
                    + "cleartext tunnels on loopback under the harness's fleet secret (--tunnel-auth token, "
                    + "FLEETGATE_FLEET_SECRET=\(FleetFixture.testSecret)); see LoadTests/README.md, --target")
        }
        try await self.probe(gateway, group: clientGroup)
        let sampler = gateway.pid.map { ProcessSampler(pid: $0) }
        let cpuBefore = gateway.pid.flatMap { ProcessSampler.cpuSeconds(pid: $0) } ?? 0
        let client = LoadClient(
            host: gateway.host, port: gateway.clientPort, group: clientGroup,
            connections: self.scenario.clients.connections,
            ttftObjective: self.scenario.clients.ttftObjectiveMilliseconds,
            originVia: self.scenario.clients.originVia)
        let origin = NIODeadline.now() + .milliseconds(200)
        self.log(
            "fleet-load: sending \(plan.requests.count) requests over \(self.scenario.warmup + self.scenario.duration) s; "
                + "\(plan.churn.count) churn events")
        let carLag = LagSamples()
        let watch = GatewayWatch()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            if let sampler { tasks.addTask { await sampler.run() } }
            if let pid = gateway.pid { tasks.addTask { await watch.run(pid: pid) { client.stopSending() } } }
            // The cars' own event loop: a 100 ms timer's lateness. Past the gateway's PING deadline
            // the cars look dead to it, and the run measures the harness, not the gateway.
            tasks.addTask {
                while !Task.isCancelled {
                    let loop = carGroup.next()
                    let asked = NIODeadline.now()
                    let fired = try await loop.scheduleTask(in: .milliseconds(100)) { NIODeadline.now() }.futureResult
                        .get()
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
        // Read before closing the connections: closing ends what is still open as connection_lost,
        // and a frozen gateway's streams would then pass for closed.
        let openAtDrain = client.outstanding
        let ended = watch.seen.endedAt.map { "\(gateway.ended ?? "gone") (seen at \(Int($0)) s; sending stopped)" }
        let cpuNow = gateway.pid.flatMap { ProcessSampler.cpuSeconds(pid: $0) } ?? watch.seen.cpuSeconds
        let cpu = (cpuNow ?? cpuBefore) - cpuBefore
        if let ended { self.log("fleet-load: the gateway ended during the run: \(ended)") }
        if openAtDrain > 0 {
            self.log("fleet-load: \(openAtDrain) requests were still open 60 s after the last was sent")
        }
        client.close()
        await fleet.stopAll()
        gateway.process?.stop()
        let records = (try? JobLog.read(path: jobLogPath)) ?? []
        // Every request's result beside its plan entry, for looking into a failed check.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines = Data()
        for result in client.completed.sorted(by: { $0.index < $1.index }) {
            let request = plan.requests[result.index]
            lines.append(
                contentsOf: Data(
                    "{\"id\":\"\(request.id)\",\"country\":\"\(request.country)\",\"max_tokens\":\(request.maxTokens),\"streaming\":\(request.streaming),\"cancel_after\":\(request.cancelAfter.map(String.init) ?? "null"),\"http1\":\(request.http1),\"turn\":\(request.turn),\"previous\":\(request.previous.map(String.init) ?? "null"),\"result\":"
                        .utf8))
            lines.append((try? encoder.encode(result)) ?? Data("null".utf8))
            lines.append(contentsOf: Data("}\n".utf8))
        }
        try lines.write(to: URL(fileURLWithPath: self.output + "/requests.ndjson"))
        let analysis = Analysis(
            scenario: self.scenario, plan: plan, results: client.completed, records: records,
            gateway: sampler?.all ?? [],
            gatewayCPUSeconds: cpu,
            churn: fleet.applied.withLock { $0.map { .init(t: $0.at, kind: $0.kind, car: $0.car) } },
            carsRegistered: registered, started: started, loadAverage: [loadBefore, ProcessSampler.loadAverage])
        for channel in centralChannels { try? await channel.close() }
        try? await carGroup.shutdownGracefully()
        try? await clientGroup.shutdownGracefully()
        var finished = analysis
        finished.idleMemory = idle
        finished.carLoopLagMicros = carLag.values.withLock { $0 }
        finished.openAtDrain = openAtDrain
        finished.gatewayEnded = ended
        let summary = finished.summary()
        try SummaryFiles.write(summary, to: self.output)
        return summary
    }

    /// `~/.cache/fleetgate` (or `FLEETGATE_CACHE`).
    package static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["FLEETGATE_CACHE"] ?? (environment["HOME"] ?? "/root") + "/.cache/fleetgate"
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
