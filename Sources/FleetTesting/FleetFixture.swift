public import FleetAgent
public import FleetGate
import FleetHTTP2
public import FleetProtocol
import FleetScheduler
public import Foundation
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle

/// A car to start in a ``FleetFixture``.
public struct CarSpec: Sendable {
    public var vehicleID: String
    public var region: String
    public var hardware: HardwareClass
    /// Engine slowdown: > 1 slower, < 1 faster than the profile (tests use both).
    public var slowdown: Double
    public var state: VehicleState
    /// TLS towards the gateway's tunnel port, when it has TLS.
    public var tls: AgentConfiguration.TunnelTLS?
    /// When the car's token expires (default: in an hour).
    public var tokenExpires: Date?
    /// Where the car appends its job records, if anywhere.
    public var jobLog: String?

    public init(
        _ vehicleID: String, region: String = "eu-central", hardware: HardwareClass = .ai5, slowdown: Double = 1,
        state: VehicleState = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 0)
    ) {
        self.vehicleID = vehicleID
        self.region = region
        self.hardware = hardware
        self.slowdown = slowdown
        self.state = state
    }
}

/// A running car of a fixture.
public struct TestCar: Sendable {
    public let spec: CarSpec
    public let car: SimulatedCar
    /// The pseudonym clients see in `x-fleet-vehicle`.
    public let pseudonym: String
    public var engine: SyntheticEngine { self.car.engine }
}

/// A gateway on loopback port 0 with in-process cars, for integration tests.
public struct FleetFixture: Sendable {
    public let gateway: Gateway
    public let clientPort: Int
    public let tunnelPort: Int
    public let adminPort: Int
    public let group: any EventLoopGroup
    let secret: String
    let cars: CarPool
    let logger: Logger
    let services: ServiceGroup

    /// Begins the gateway's graceful shutdown, as SIGTERM would.
    public func shutDownGracefully() async {
        await self.services.triggerGracefulShutdown()
    }

    /// The fleet secret tests mint tokens with.
    public static let testSecret = "fleet-test-secret-0123456789abcdef"

    /// `http://127.0.0.1:<client port>`.
    public var baseURL: String { "http://127.0.0.1:\(self.clientPort)" }

    /// Starts a car and waits until the gateway has registered it.
    @discardableResult
    public func startCar(_ spec: CarSpec, timeout: Duration = .seconds(10)) async throws -> TestCar {
        var car: SimulatedCar?
        let pseudonym = try await self.start(
            spec.vehicleID, region: spec.region, hardware: spec.hardware, tls: spec.tls,
            expires: spec.tokenExpires, timeout: timeout
        ) { config in
            let simulated = SimulatedCar(
                configuration: config, state: spec.state, slowdown: spec.slowdown, group: self.group,
                logger: self.logger,
                jobLog: spec.jobLog.flatMap { try? JobLog(path: $0, region: spec.region, vehicleID: spec.vehicleID) })
            car = simulated
            return simulated.tunnel
        }
        return TestCar(spec: spec, car: car!, pseudonym: pseudonym)
    }

    /// Starts a car in `region` running `engine` (for example ``OpenAILocalEngine`` in front of a
    /// real model) and waits until the gateway has registered it; returns its pseudonym.
    @discardableResult
    public func startCar(
        _ vehicleID: String, region: String = "eu-central", hardware: HardwareClass = .hw4,
        engine: any InferenceEngine, timeout: Duration = .seconds(10)
    ) async throws -> String {
        try await self.start(vehicleID, region: region, hardware: hardware, tls: nil, expires: nil, timeout: timeout) {
            config in
            let state = AgentState(
                initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: engine.slots),
                slots: engine.slots)
            return TunnelClient(
                configuration: config, engine: engine, state: state, group: self.group, logger: self.logger)
        }
    }

    /// Mints the car's token, starts the tunnel `makeTunnel` builds, waits for its registration.
    /// A credential for `vehicleID` in `region`, for agents started outside the fixture.
    public func token(vehicleID: String, region: String) throws -> String {
        let credentials = try FleetCredentials(secret: self.secret)
        return credentials.issue(vehicleID: vehicleID, regions: [region], expires: Date().addingTimeInterval(3600))
    }

    private func start(
        _ vehicleID: String, region: String, hardware: HardwareClass, tls: AgentConfiguration.TunnelTLS?,
        expires: Date?, timeout: Duration, _ makeTunnel: (AgentConfiguration) -> TunnelClient
    ) async throws -> String {
        let credentials = try FleetCredentials(secret: self.secret)
        let token = credentials.issue(
            vehicleID: vehicleID, regions: [region], expires: expires ?? Date().addingTimeInterval(3600))
        let config = AgentConfiguration(
            gatewayHost: "127.0.0.1", gatewayPort: self.tunnelPort, vehicleID: vehicleID, credential: token,
            region: region, hardware: hardware, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200),
            tls: tls)
        self.cars.add(makeTunnel(config))
        try await waitUntil(timeout: timeout, "car \(vehicleID) registered") {
            self.gateway.core.registry.all().contains { $0.descriptor.vehicleID == vehicleID && !$0.draining }
        }
        return credentials.pseudonym(of: vehicleID)
    }
}

/// Runs `body` with a gateway on loopback (ports 0) and the given cars registered, then shuts everything down.
/// - Parameters:
///   - cars: cars to start before `body` runs.
///   - configure: adjusts the gateway configuration (ports are 0 unless set here).
///   - log: keeps the gateway's and cars' lines at info and above for the test to read.
public func withFleet<R: Sendable>(
    cars: [CarSpec] = [],
    configure: (inout GatewayConfiguration) -> Void = { _ in },
    log: CapturedLog? = nil,
    _ body: (FleetFixture) async throws -> R
) async throws -> R {
    var logger = Logger(label: "fleet-test")
    logger.logLevel =
        ProcessInfo.processInfo.environment["FLEET_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    if let log { logger = Logger(label: "fleet-test") { _ in CapturedLog.Handler(sink: log, logLevel: .info) } }
    var configuration = GatewayConfiguration(fleetSecret: FleetFixture.testSecret)
    configuration.listeners.client.port = 0
    configuration.listeners.tunnel.port = 0
    configuration.admin.port = 0
    configuration.tunnel.pingInterval = .milliseconds(200)
    configuration.tunnel.auth = .token  // #20: tests use tokens unless they configure certificates
    // Lag shedding off: on a shared CI machine a debug build's event loops run late because of the
    // machine, not the gateway's load; shedding is tested on its own (LoadShedderTests, OverloadTests).
    configuration.limits.shedLag = .zero
    configure(&configuration)
    let group = MultiThreadedEventLoopGroup.singleton
    // The same pieces as `fleetgate demo`: the gateway and a pool of in-process cars, in one group.
    let gateway = try Gateway(configuration: configuration, group: group, logger: logger)
    let pool = CarPool()
    // Stopped in reverse: the gateway drains first (its cars are told to reconnect and their
    // streams finish), then the cars stop — as a gateway restart looks to a fleet.
    var serviceConfiguration = ServiceGroupConfiguration(
        services: [.init(service: pool), .init(service: gateway)], logger: logger)
    // A gateway or car that ignores cancellation crashes the test run with ServiceLifecycle's message after
    // two minutes, rather than hanging it until CI's limit (helper-118: the wait below had no bound).
    serviceConfiguration.maximumCancellationDuration = .seconds(120)
    let services = ServiceGroup(configuration: serviceConfiguration)

    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await services.run() }
        do {
            let client = try await gateway.clientListener.boundAddress.get()
            let tunnel = try await gateway.tunnelListener.boundAddress.get()
            let admin = try await gateway.adminListener.boundAddress.get()
            let fixture = FleetFixture(
                gateway: gateway, clientPort: client.port!, tunnelPort: tunnel.port!, adminPort: admin.port!,
                group: group, secret: configuration.fleetSecret, cars: pool, logger: logger, services: services)
            for spec in cars { try await fixture.startCar(spec) }
            let result = try await body(fixture)
            tasks.cancelAll()
            try? await tasks.waitForAll()
            return result
        } catch {
            tasks.cancelAll()
            throw error
        }
    }
}

/// Polls `condition` every 5 ms until it holds; throws ``TimeoutError`` after `timeout`.
public func waitUntil(timeout: Duration = .seconds(10), _ what: String, _ condition: () async throws -> Bool)
    async throws
{
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    throw TimeoutError(what: what)
}

/// A wait that did not finish in time.
public struct TimeoutError: Error, CustomStringConvertible {
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for: \(self.what)" }
}
