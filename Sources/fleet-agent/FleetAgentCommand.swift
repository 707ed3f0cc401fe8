import ArgumentParser
import AsyncHTTPClient
import FleetAgent
import FleetHTTP2
import FleetProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

@main
struct FleetAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-agent",
        abstract: "The car-side agent: dials the gateway and serves inference on the tunnel.",
        subcommands: [Run.self, Serve.self]
    )
}

struct EngineOptions: ParsableArguments {
    @Option(name: .customLong("hardware"), help: "Hardware class: hw3, hw4 or ai5.") var hardwareName = "hw4"
    @Option(help: "Engine: synthetic, or openai-local (a local OpenAI-compatible runtime at --upstream).") var engine =
        "synthetic"
    @Option(help: "openai-local: the runtime's base URL, ending in /v1.") var upstream = "http://127.0.0.1:8081/v1"
    @Option(help: "openai-local: ADVERTISED=UPSTREAM model name (repeatable; default: the runtime's own names).")
    var modelMap: [String] = []
    @Option(help: "Hidden slowdown of the synthetic engine (1 = nominal).") var slowdown = 1.0
    @Option(help: "Override the profile's slot count (benchmarks).") var slots: Int?
    @Option(help: "Override the profile's decode tokens/s per stream, also its aggregate (benchmarks).") var decodeTps:
        Double?
    @Option(help: "Override the profile's prefill tokens/s (benchmarks).") var prefillTps: Double?
    @Option(help: "Log level.") var logLevel = "info"

    var hardware: HardwareClass { HardwareClass(rawValue: self.hardwareName) ?? .hw4 }

    /// The engine chosen: the synthetic one, or the bridge to a local runtime (asked for its models first).
    func makeEngine() async throws -> any InferenceEngine {
        guard self.engine != "openai-local" else { return try await self.makeOpenAILocalEngine() }
        return try self.makeSyntheticEngine()
    }

    func makeOpenAILocalEngine() async throws -> OpenAILocalEngine {
        var mapping: [String: String] = [:]
        for entry in self.modelMap {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--model-map: '\(entry)' is not ADVERTISED=UPSTREAM")
            }
            mapping[parts[0]] = parts[1]
        }
        let slots = self.slots ?? 1
        guard (1...4096).contains(slots) else { throw ValidationError("--slots: \(slots) is not in 1...4096") }
        let configuration = OpenAILocalEngine.Configuration(
            baseURL: self.upstream, models: mapping, slots: slots,
            initialDecodeTokensPerSecond: self.decodeTps ?? HardwareProfile.of(self.hardware).decodeTokensPerSecond,
            initialPrefillTokensPerSecond: self.prefillTps ?? HardwareProfile.of(self.hardware).prefillTokensPerSecond)
        // The runtime may still be loading its model: wait for it with backoff (1 s … 30 s),
        // saying so, rather than exiting; the tunnel is dialled once it answers.
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
        var attempt = 0
        while true {
            do {
                return try await OpenAILocalEngine.connect(configuration, client: .shared)
            } catch let error as EngineError {
                let delay = backoff.delay(attempt: attempt, random: Double.random(in: 0..<1))
                Logger(label: "fleet-agent").warning(
                    "Runtime not answering yet; retrying",
                    metadata: [
                        "fleet.upstream": "\(self.upstream)", "error.message": "\(error.message)",
                        "fleet.retry.seconds": "\(Double(delay.nanoseconds) / 1e9)",
                    ])
                attempt += 1
                try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
            }
        }
    }

    func makeSyntheticEngine() throws -> SyntheticEngine {
        guard HardwareClass(rawValue: self.hardwareName) != nil else {
            throw ValidationError("--hardware: '\(self.hardwareName)' is not one of hw3, hw4, ai5")
        }
        guard self.engine == "synthetic" else {
            throw ValidationError("--engine: '\(self.engine)' is not known (synthetic, openai-local)")
        }
        guard self.slowdown >= 1 else { throw ValidationError("--slowdown: \(self.slowdown) must be ≥ 1") }
        var profile = HardwareProfile.of(self.hardware)
        if let slots = self.slots {
            guard (1...4096).contains(slots) else { throw ValidationError("--slots: \(slots) is not in 1...4096") }
            profile.slots = slots
        }
        if let decode = self.decodeTps {
            guard decode > 0 else { throw ValidationError("--decode-tps: \(decode) must be > 0") }
            profile.decodeTokensPerSecond = decode
            profile.aggregateDecodeTokensPerSecond = decode * Double(profile.slots)
        }
        if let prefill = self.prefillTps {
            guard prefill > 0 else { throw ValidationError("--prefill-tps: \(prefill) must be > 0") }
            profile.prefillTokensPerSecond = prefill
        }
        return SyntheticEngine(profile: profile, slowdown: self.slowdown)
    }

    func logger() -> Logger {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "fleet-agent")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Dial the gateway's tunnel port and serve jobs.")
    @OptionGroup var engineOptions: EngineOptions
    @Option(help: "Gateway tunnel address host:port.") var gateway = "127.0.0.1:7443"
    @Option(help: "This car's vehicle id.") var vehicleID: String
    @Option(help: "Its token (fleetgate token issue); or FLEET_AGENT_TOKEN.") var token: String?
    @Option(help: "The region the car is in.") var region: String
    @Flag(inversion: .prefixedNo, help: "Plugged in.") var plugged = true
    @Option(help: "State of charge, 0–100.") var charge = 80
    @Option(help: "Link: wifi, cellular, satellite, ethernet.") var link = "wifi"
    @Option(help: "Seconds until the car drives off.") var departingIn: Int?
    @Option(help: "Serve only while plugged in (owner policy).") var onlyWhilePlugged = true
    @Option(help: "Lowest state of charge to serve at (owner policy).") var minCharge = 50
    @Option(help: "JSON file with plugged_in, charge_percent, link, departing_in_s; watched for changes.")
    var stateFile: String?
    @Flag(help: "Dial the gateway over TLS (production).") var tls = false
    @Option(help: "PEM CA file to verify the gateway with (default: system roots).") var caFile: String?
    @Option(help: "Name to verify on the gateway's certificate (default: the gateway host).") var serverName: String?
    @Option(help: "Also serve the engine on host:port as a plain OpenAI-compatible server (shares slots).") var listen:
        String?
    @Option(help: "Append one JSON line per job (request id, zone, region, resume-from, tokens, outcome) to FILE.")
    var jobLog: String?

    func run() async throws {
        let logger = self.engineOptions.logger()
        let parts = self.gateway.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw ValidationError("--gateway: '\(self.gateway)' is not host:port")
        }
        guard (0...100).contains(self.charge) else {
            throw ValidationError("--charge: \(self.charge) is not in 0...100")
        }
        guard let token = self.token ?? ProcessInfo.processInfo.environment["FLEET_AGENT_TOKEN"] else {
            throw ValidationError("give --token or set FLEET_AGENT_TOKEN")
        }
        let engine = try await self.engineOptions.makeEngine()
        guard let link = LinkType(rawValue: self.link) else {
            throw ValidationError("--link: '\(self.link)' is not one of wifi, cellular, satellite, ethernet")
        }
        let state = AgentState(
            initial: VehicleState(
                pluggedIn: self.plugged, chargePercent: self.charge, link: link,
                departingInSeconds: self.departingIn, slotsFree: engine.slots),
            slots: engine.slots)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = AgentConfiguration(
            gatewayHost: String(parts[0]), gatewayPort: port, vehicleID: self.vehicleID, credential: token,
            region: self.region, hardware: self.engineOptions.hardware,
            policy: OwnerPolicy(onlyWhilePlugged: self.onlyWhilePlugged, minChargePercent: self.minCharge),
            tls: self.tls ? .init(caFile: self.caFile, serverHostname: self.serverName) : nil)
        var services: [any Service] = []
        if let stateFile = self.stateFile {
            let watcher = StateFileWatcher(path: stateFile, state: state, logger: logger)
            try watcher.apply()
            services.append(watcher)
        }
        let jobLog = try self.jobLog.map { try JobLog(path: $0, region: self.region, vehicleID: self.vehicleID) }
        let tunnel = TunnelClient(
            configuration: config, engine: engine, state: state, group: group, logger: logger, jobLog: jobLog)
        services.append(tunnel)
        if let listen = self.listen {
            let address = listen.split(separator: ":")
            guard address.count == 2, let listenPort = Int(address[1]) else {
                throw ValidationError("--listen: '\(listen)' is not host:port")
            }
            let channel = try await HTTPServer.bind(
                host: String(address[0]), port: listenPort, group: group, responder: tunnel.responder)
            logger.info("Serving locally", metadata: ["fleet.address": "\(channel.localAddress!)"])
        }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await serviceGroup.run()
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Serve the engine as a plain OpenAI-compatible HTTP server (h2c + HTTP/1.1), e.g. as central capacity.")
    @OptionGroup var engineOptions: EngineOptions
    @Option(help: "Address to listen on, host:port (port 0 picks one).") var listen = "127.0.0.1:8000"

    func run() async throws {
        let logger = self.engineOptions.logger()
        let parts = self.listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), (0...65535).contains(port) else {
            throw ValidationError("--listen: '\(self.listen)' is not host:port")
        }
        let engine = try await self.engineOptions.makeEngine()
        // As central capacity it is not a car: many slots, no telemetry.
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0),
            slots: 4096)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let responder = AgentResponder(engine: engine, state: state, hello: nil, logger: logger)
        let channel = try await HTTPServer.bind(host: String(parts[0]), port: port, group: group, responder: responder)
        print("fleet-agent serving on http://\(parts[0]):\(channel.localAddress!.port!)/v1")
        try await channel.closeFuture.get()
    }
}
