public import FleetAgent
public import FleetHTTP2
public import FleetProtocol
import Logging
public import NIOCore
import NIOPosix

/// A central OpenAI-compatible server for tests: a synthetic engine served by `AgentResponder`
/// on loopback (what `fleet-agent serve --listen` runs), HTTP/1.1 and h2c on one port.
public struct CentralServer: Sendable {
    public let channel: any Channel
    public let engine: SyntheticEngine
    /// Every request the server received, with its body.
    public let recorder: BodyRecordingResponder

    /// The base URL, `http://127.0.0.1:PORT/v1`.
    public var baseURL: String { "http://127.0.0.1:\(self.channel.localAddress!.port!)/v1" }

    /// Starts one; close ``channel`` when done.
    public static func start(hardware: HardwareClass = .ai5, slowdown: Double = 0.1) async throws -> CentralServer {
        let engine = SyntheticEngine(profile: .of(hardware), slowdown: slowdown)
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0), slots: 4096)
        let responder = AgentResponder(engine: engine, state: state, hello: nil, logger: Logger(label: "central"))
        let recorder = BodyRecordingResponder(responder)
        let channel = try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, responder: recorder)
        return CentralServer(channel: channel, engine: engine, recorder: recorder)
    }
}
