import ArgumentParser
import AsyncHTTPClient
import FleetAgent
import FleetConfiguration
import FleetGate
import FleetHTTP2
import FleetProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// `fleetgate demo`: the gateway and simulated cars in several regions, on embedded defaults.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway with simulated cars until Ctrl-C.")
    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).") var logLevel = "info"
    @Option(help: "Simulated cars per region (one of each hardware class per three).") var carsPerRegion = 3
    @Option(
        help:
            "Add a car in eu-central backed by a real model: the base URL (…/v1) of a local OpenAI-compatible runtime (./scripts/demo.sh --real-model starts one)."
    )
    var realModel: String?

    /// Regions the demo fleet parks in, across the eu, us and apac zones.
    static let regions = ["eu-central", "eu-west", "eu-north", "us-east", "ap-northeast"]

    func run() async throws {
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw ValidationError(
                "--log-level: '\(self.logLevel)' is not one of \(LogLevelControl.levelNames.joined(separator: ", "))")
        }
        LogLevelControl(level).bootstrap()
        let logger = Logger(label: "fleetgate")
        Self.noteIgnoredEnvironment(logger)
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        var config = GatewayConfiguration(fleetSecret: secret)
        config.tunnel.auth = .token  // #20: the demo's simulated cars use HMAC tokens (development)
        config.geo.databaseFile = GatewayConfiguration.Geo.setupDatabase
        config.fallbackToFreePorts = true  // the contract's ports when free, any free port otherwise
        let gateway = try Gateway(configuration: config, logger: logger)

        var realEngine: OpenAILocalEngine?
        if let url = self.realModel {
            do {
                // One slot: llama-cpp-python's server aborts a running request when another arrives.
                realEngine = try await OpenAILocalEngine.connect(
                    .init(baseURL: url, slots: 1, initialDecodeTokensPerSecond: 50, initialPrefillTokensPerSecond: 500),
                    client: .shared)
            } catch let error as EngineError {
                throw ValidationError("--real-model: \(error.message)")
            }
        }
        let cars = CarPool()
        let services: [any Service] = [
            gateway, cars,
            WhenBound(
                gateway: gateway, cars: cars, logger: logger, secret: try FleetCredentials(secret: secret),
                carsPerRegion: self.carsPerRegion, realEngine: realEngine),
        ]
        try await ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger)
        ).run()
    }
}

extension Demo {
    /// The demo runs on embedded defaults: configuration variables set in its environment are named
    /// as ignored, since an app developer who set `FLEETGATE_AUTH_API_KEYS` for it was served without
    /// keys and no word why (helper-100).
    static func noteIgnoredEnvironment(_ logger: Logger) {
        let prefix = ConfigStack.Program.fleetgate.environmentPrefix
        let environment = ProcessInfo.processInfo.environment
        let ignored = GatewayConfiguration.schema.keys.map { $0.environmentVariable(prefix: prefix) }
            .filter { environment[$0] != nil }.sorted()
        guard !ignored.isEmpty else { return }
        logger.notice(
            "fleetgate demo runs on embedded defaults and ignores the configuration in its environment; fleetgate serve reads it",
            metadata: ["fleet.ignored": "\(ignored.joined(separator: ","))"])
    }
}

/// Waits for the listeners, prints how to use the demo, then runs the simulated cars.
struct WhenBound: Service {
    let gateway: Gateway
    let cars: CarPool
    let logger: Logger
    let secret: FleetCredentials
    let carsPerRegion: Int
    let realEngine: OpenAILocalEngine?

    func run() async throws {
        let client = try await self.gateway.clientListener.boundAddress.get()
        let tunnel = try await self.gateway.tunnelListener.boundAddress.get()
        let admin = try await self.gateway.adminListener.boundAddress.get()
        let hardware: [HardwareClass] = [.ai5, .hw4, .hw3]
        var cars: [SimulatedCar] = []
        var carLogger = self.logger
        carLogger.logLevel = .warning
        for region in Demo.regions {
            for i in 0..<self.carsPerRegion {
                let vehicleID = "demo-\(region)-\(i + 1)"
                let token = self.secret.issue(
                    vehicleID: vehicleID, regions: [region], expires: Date().addingTimeInterval(86_400))
                let config = AgentConfiguration(
                    gatewayHost: "127.0.0.1", gatewayPort: tunnel.port!, vehicleID: vehicleID, credential: token,
                    region: region, hardware: hardware[i % hardware.count])
                cars.append(
                    SimulatedCar(
                        configuration: config,
                        state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 0),
                        group: MultiThreadedEventLoopGroup.singleton, logger: carLogger))
            }
        }
        var tunnels = cars.map(\.tunnel)
        var realModelHelp = ""
        if let engine = self.realEngine {
            let vehicleID = "demo-real-model"
            let config = AgentConfiguration(
                gatewayHost: "127.0.0.1", gatewayPort: tunnel.port!, vehicleID: vehicleID,
                credential: self.secret.issue(
                    vehicleID: vehicleID, regions: ["eu-central"], expires: Date().addingTimeInterval(86_400)),
                region: "eu-central", hardware: .hw4)
            let state = AgentState(
                initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: engine.slots),
                slots: engine.slots)
            tunnels.append(
                TunnelClient(
                    configuration: config, engine: engine, state: state, group: MultiThreadedEventLoopGroup.singleton,
                    logger: carLogger))
            let model = engine.models.first?.id ?? "?"
            realModelHelp = """

                A real model (\(model), via \(engine.configuration.baseURL)) runs on car demo-real-model in eu-central:

                  curl -N --http2-prior-knowledge http://127.0.0.1:\(client.port!)/v1/chat/completions -H 'content-type: application/json' \\
                    -d '{"model":"\(model)","stream":true,"max_tokens":60,"messages":[{"role":"user","content":"Tell me about electric cars."}]}'

                """
        }
        let url = "http://127.0.0.1:\(client.port!)"
        let banner = """

            FleetGate demo: \(cars.count) simulated cars in \(Demo.regions.joined(separator: ", ")).
              API      \(url)/v1   (h2c and HTTP/1.1; no API key)
              metrics  http://127.0.0.1:\(admin.port!)/metrics   cars: http://127.0.0.1:\(admin.port!)/admin/cars
              dashboard  http://127.0.0.1:\(admin.port!)/dashboard/login?token=\(self.gateway.dashboard.token)
            Stream a completion (your loopback address counts as the default region, eu-central):

              curl -N --http2-prior-knowledge \(url)/v1/chat/completions -H 'content-type: application/json' \\
                -d '{"model":"fleet-8b","stream":true,"messages":[{"role":"user","content":"Hello, fleet"}]}'

            or the Responses API (docs/responses.md):

              curl -N --http2-prior-knowledge \(url)/v1/responses -H 'content-type: application/json' \\
                -d '{"model":"fleet-8b","stream":true,"input":"Hello, fleet"}'

            \(realModelHelp)Ctrl-C stops it.

            """
        // Unbuffered, so the banner shows at once even when stdout is a pipe.
        FileHandle.standardOutput.write(Data((banner + "\n").utf8))
        for tunnel in tunnels { self.cars.add(tunnel) }
        try? await gracefulShutdown()  // returning early would end the group
    }
}
