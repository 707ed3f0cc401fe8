import AsyncHTTPClient
public import FleetConfiguration
public import FleetHTTP2
public import FleetProtocol
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import UnixSignals

/// The car-side program as one `Service`, like hummingbird's `Application`.
///
/// As a car (``Role/car``) it dials the gateway (``TunnelClient``), watches its state file and
/// optionally serves the same engine on a local port; as central capacity (``Role/central``) it
/// only serves the engine on ``AgentProgramConfiguration/listen``. On SIGTERM every part drains:
/// the tunnel announces it and sends GOAWAY, the local server stops accepting and lets its streams
/// finish.
/// ```swift
/// let agent = try await Agent(configuration: configuration, role: .car, logger: logger)
/// try await agent.runService()
/// ```
public final class Agent: Service, Sendable {
    /// What the agent is.
    public enum Role: Sendable {
        /// A car: dial the gateway (vehicle id, region and token required).
        case car
        /// Central capacity: serve the engine on `listen` (default 127.0.0.1:8000); many slots, no telemetry.
        case central
    }

    /// The tunnel client of the first slot (cars).
    public var tunnel: TunnelClient? { self.tunnels.first }
    /// Every tunnel client: one per slot (`gateway.tunnels`, issue #21), each to a distinct replica,
    /// sharing one engine, state and slot count.
    public let tunnels: [TunnelClient]
    /// The local OpenAI-compatible server, when `listen` is set (always for central capacity).
    public let server: HTTPServer?
    let watcher: StateFileWatcher?
    let logger: Logger

    /// Builds the agent: makes the engine (asking a local runtime for its models), checks what the role needs.
    /// - Throws: ``ConfigurationError`` for a missing vehicle id, region or token, or an unreachable runtime.
    public init(
        configuration: AgentProgramConfiguration, role: Role, group: (any EventLoopGroup)? = nil, logger: Logger
    ) async throws {
        // By default the loops of async-http-client's shared group (NIO's singleton). An openai-local
        // job reads its runtime on the loop its tunnel stream lives on, whatever the group (``HTTP1Client``).
        let group = group ?? HTTPClient.defaultEventLoopGroup
        self.logger = logger
        let engine = try await configuration.engine.makeEngine(logger: logger)
        switch role {
        case .car:
            for (key, value) in [
                ("vehicle.id", configuration.vehicle.id), ("vehicle.region", configuration.vehicle.region),
            ] where value == nil {
                throw ConfigurationError(.missingValue, key: key, "is required to run a car")
            }
            guard configuration.vehicle.token != nil || configuration.gateway.tls?.certificateFile != nil else {
                throw ConfigurationError(
                    .missingValue, key: "token",
                    "is required without a vehicle certificate (gateway.certificateFile): set FLEET_AGENT_TOKEN or tokenFile"
                )
            }
            // helper-103: `--slots 3000` showed 64 on the gateway, and nothing said so.
            if engine.slots > FleetStatus.maxSlots {
                logger.warning(
                    "The gateway sends a car at most \(FleetStatus.maxSlots) jobs at once; the other slots stay idle",
                    metadata: ["fleet.slots": "\(engine.slots)"])
            }
            var initial = configuration.state
            initial.slotsFree = engine.slots
            let state = AgentState(initial: initial, slots: engine.slots)
            let jobLog = try configuration.jobLog.map { path in
                do {
                    return try JobLog(
                        path: path, region: configuration.vehicle.region ?? "",
                        vehicleID: configuration.vehicle.id ?? "")
                } catch {
                    throw ConfigurationError(.unreadableFile, key: "jobLog", value: path, "\(error)", cause: error)
                }
            }
            // Issue #21: `gateway.tunnels` slots sharing one view of the replicas, each tunnel to a distinct one.
            let directory = configuration.replicaDirectory()
            let tunnels = (0..<configuration.gateway.tunnels).map { slot in
                TunnelClient(
                    configuration: configuration.tunnelConfiguration(), engine: engine, state: state, group: group,
                    logger: logger, jobLog: jobLog, sleep: nil, directory: directory, slot: slot)
            }
            let tunnel = tunnels[0]
            self.tunnels = tunnels
            self.watcher = configuration.stateFile.map { path in
                let watcher = StateFileWatcher(path: path, state: state, logger: logger)
                do { try watcher.apply() } catch {
                    // Not fatal (helper-130: under the unit's Restart=always, a car whose software had not
                    // written the file yet restarted every 5 s), and not serving either: told departing now
                    // (no work, whatever the owner's policy) until the first file it can read, which sets
                    // or clears the departure — a car never serves on a state nobody measured (helper-132).
                    state.update { $0.departingInSeconds = 0 }
                    logger.warning(
                        "State file not usable yet; the car takes no work until it can read it",
                        metadata: ["fleet.file": "\(path)", "error": "\(error)"])
                }
                return watcher
            }
            self.server = try configuration.listen.map {
                try Self.server(listen: $0, responder: tunnel.responder, group: group, logger: logger)
            }
        case .central:
            let state = AgentState(
                initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0), slots: 4096)
            self.tunnels = []
            self.watcher = nil
            self.server = try Self.server(
                listen: configuration.listen ?? "127.0.0.1:8000",
                responder: AgentResponder(engine: engine, state: state, hello: nil, logger: logger), group: group,
                logger: logger)
        }
    }

    static func server(listen: String, responder: AgentResponder, group: any EventLoopGroup, logger: Logger) throws
        -> HTTPServer
    {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ConfigurationError(.invalidValue, key: "listen", value: listen, "is not host:port")
        }
        return HTTPServer(
            name: "local", host: String(listen[..<colon]), port: port, group: group, logger: logger,
            configurator: .http(responder: responder))
    }

    /// The services, in start order: state file, local server, tunnel (stopped in reverse).
    public var services: [any Service] {
        var services: [any Service] = []
        if let watcher = self.watcher { services.append(watcher) }
        if let server = self.server { services.append(server) }
        services += self.tunnels as [any Service]
        return services
    }

    /// Runs until graceful shutdown, then drains.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await ServiceGroup(
                configuration: .init(services: self.services.map { .init(service: $0) }, logger: self.logger)
            ).run()
        } onGracefulShutdown: {
            // Once for the car, not per tunnel (helper-104: a SIGTERM said nothing until "Tunnel closed", up
            // to drainSeconds later).
            guard let tunnel = self.tunnel else { return }
            self.logger.info(
                "Draining: the gateway is told; jobs in flight finish or move to other cars, then the tunnels close",
                metadata: [
                    "fleet.jobs": "\(tunnel.responder.state.slotsInUse)",
                    "fleet.drain.seconds": "\(tunnel.configuration.drainSeconds)",
                ])
        }
    }

    /// Runs the agent as the whole program: SIGTERM and SIGINT drain it.
    /// - Throws: ``AgentRefused`` when the gateway refused the car for good (on any of its tunnels);
    ///   ``StoppedAtSecondSignal`` when a second SIGTERM or SIGINT cut the drain (`fleet-agent` exits with
    ///   its ``StoppedAtSecondSignal/exitCode``, not 0).
    public func runService() async throws {
        let cut: StoppedAtSecondSignal?
        do {
            // The first SIGTERM or SIGINT drains; a second one stops at once (the gateway moves or fails
            // the jobs still running, as when a car's link drops).
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: self.logger))
            cut = try await group.runStoppingAtSecondSignal()
        } catch {
            // helper-73: a quarantined car exited with ServiceGroup's "service finished unexpectedly", and
            // systemd's Restart=always dialled again forever.
            if self.tunnels.contains(where: \.refusedByGateway) { throw AgentRefused() }
            throw error
        }
        if let cut {
            self.logger.warning(
                "Stopped at a second signal: jobs still running were cut",
                metadata: ["process.exit.code": "\(cut.exitCode)"])
            throw cut
        }
    }
}

/// The gateway refused the car for good (quarantine, revocation, an expired token): restarting the agent
/// does not help until an operator acts. `fleet-agent run` exits with ``exitCode`` (systemd's unit does not
/// restart on it).
public struct AgentRefused: Error, CustomStringConvertible {
    /// EX_CONFIG (sysexits.h).
    public static let exitCode: Int32 = 78
    public var description: String {
        "the gateway refuses this car (quarantined, revoked or an expired credential); not restarting"
    }
}
