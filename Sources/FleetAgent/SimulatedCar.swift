public import FleetProtocol
public import Logging
public import NIOCore

/// An in-process car for the demo and tests: a synthetic engine behind a real tunnel client.
public struct SimulatedCar: Sendable {
    public let engine: SyntheticEngine
    public let state: AgentState
    public let tunnel: TunnelClient

    /// - Parameters:
    ///   - configuration: how to reach the gateway and who the car is.
    ///   - state: initial telemetry (slots are filled in from the hardware profile).
    ///   - slowdown: a hidden slowdown factor for the engine (1 = nominal).
    public init(
        configuration: AgentConfiguration, state: VehicleState, slowdown: Double = 1, group: any EventLoopGroup,
        logger: Logger, jobLog: JobLog? = nil
    ) {
        self.engine = SyntheticEngine(profile: .of(configuration.hardware), slowdown: slowdown)
        self.state = AgentState(initial: state, slots: self.engine.slots)
        self.tunnel = TunnelClient(
            configuration: configuration, engine: self.engine, state: self.state, group: group, logger: logger,
            jobLog: jobLog)
    }
}
