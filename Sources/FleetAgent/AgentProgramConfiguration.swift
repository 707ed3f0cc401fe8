public import FleetHTTP2
public import FleetProtocol
public import NIOCore

/// Everything `fleet-agent` reads (`fleet-agent.yaml`, `FLEET_AGENT_*`, flags), nested by concern;
/// `init(config:)` and the key list are in `AgentProgramConfiguration+ConfigReader.swift`.
///
/// ``tunnelConfiguration()`` turns it into the ``AgentConfiguration`` a ``TunnelClient`` dials with.
public struct AgentProgramConfiguration: Sendable {
    /// Where the gateway is and how to verify it (`gateway.*`).
    public var gateway: Gateway = .init()
    /// Who the car is (`vehicle.*`, `token`, `tokenFile`).
    public var vehicle: Vehicle = .init()
    /// The inference engine (`engine.*`).
    public var engine: Engine = .init()
    /// Initial telemetry and the owner's policy (`state.*`, `policy.*`).
    public var state: VehicleState = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 0)
    /// The owner's policy.
    public var policy: OwnerPolicy = OwnerPolicy()
    /// A JSON state file watched for changes (`state.file`); nil: none.
    public var stateFile: String?
    /// Reconnect and drain (`reconnect.*`, `drainSeconds`).
    public var initialBackoff: TimeAmount = .milliseconds(200)
    public var maxBackoff: TimeAmount = .seconds(30)
    public var drainSeconds: Int = 30
    /// Also serve the engine on this `host:port` (`listen`); `serve` listens here only.
    public var listen: String?
    /// Append one JSON line per job here (`jobLog`); nil: no job records.
    public var jobLog: String?
    /// HTTP/2 settings of the tunnel, where the agent is the server (`tunnelHTTP2.*`):
    /// ``AgentConfiguration/tunnelHTTP2Defaults`` (no rapid-reset limit on the gateway's cancels). Keepalive
    /// PINGs every 10 s (issue #21): a gateway that vanished without a FIN (host down, link cut)
    /// is left after one unanswered for 10 s, and the tunnel re-dials another replica.
    public var tunnelHTTP2: HTTP2Configuration = {
        var configuration = AgentConfiguration.tunnelHTTP2Defaults
        configuration.keepaliveInterval = .seconds(10)
        return configuration
    }()
    /// Log level (`logging.level`).
    public var logLevel: String = "info"

    /// The defaults.
    public static var defaults: Self { Self() }
    public init() {}

    /// The gateway's tunnel address and TLS.
    public struct Gateway: Sendable, Hashable {
        public var host: String = "127.0.0.1"
        public var port: Int = 7443
        /// TLS towards the gateway; nil: cleartext (loopback development only).
        public var tls: AgentConfiguration.TunnelTLS?
        /// Further gateway replicas' tunnel addresses (`gateway.addresses`, issue #21), each dialled by its own address.
        public var others: [HostPort] = []
        /// Tunnels kept at once, each to a different replica (`gateway.tunnels`).
        public var tunnels: Int = 2
        public init() {}

        /// A `host:port`.
        public struct HostPort: Sendable, Hashable {
            public var host: String
            public var port: Int
            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }
        }
    }

    /// The car's identity. The token is a secret.
    public struct Vehicle: Sendable, Hashable {
        /// Vehicle id; required by `run`.
        public var id: String?
        /// Region; required by `run`.
        public var region: String?
        /// Token (`fleetgate token issue`); required by `run`. Secret: never logged.
        public var token: String?
        public init() {}
    }

    /// The engine.
    public struct Engine: Sendable, Hashable {
        /// `synthetic`, or `openai-local` (a local OpenAI-compatible runtime at ``upstream``).
        public var kind: String = "synthetic"
        public var hardware: HardwareClass = .hw4
        public var upstream: String = "http://127.0.0.1:8081/v1"
        /// ADVERTISED → UPSTREAM model names (openai-local).
        public var modelMap: [String: String] = [:]
        /// Hidden slowdown of the synthetic engine (1 = nominal).
        public var slowdown: Double = 1
        /// TESTING ONLY (issue #20): answer every Nth job with wrong text (synthetic words instead of
        /// the model's), so audits can be shown to catch it; 0: honest.
        public var cheatEvery: Int = 0
        /// Overrides of the hardware profile (benchmarks); nil: the profile's.
        public var slots: Int?
        /// openai-local: prompt sequences the runtime's cache keeps (told in the hello); nil: not known.
        public var cacheSequences: Int?
        /// openai-local: tokens of context the runtime keeps (its `--n_ctx`), told with it.
        public var cacheTokens: Int?
        /// The model's context window, told in the hello (`engine.contextTokens`); nil: the hardware
        /// profile's (synthetic), or `cacheTokens`, else the runtime's `max_model_len` (openai-local).
        public var contextTokens: Int?
        /// openai-local: the chat template for continuing another car's answer (`engine.chatTemplate`):
        /// `auto` (SmolLM2's when every runtime model is a SmolLM, else none), `smollm2`, `chatml` or `none`.
        public var chatTemplate: String = "auto"
        public var decodeTokensPerSecond: Double?
        public var prefillTokensPerSecond: Double?
        public init() {}
    }

    /// The tunnel client's configuration; nil members of ``vehicle`` must have been checked by the caller.
    public func tunnelConfiguration() -> AgentConfiguration {
        AgentConfiguration(
            gatewayHost: self.gateway.host, gatewayPort: self.gateway.port, vehicleID: self.vehicle.id ?? "",
            credential: self.vehicle.token ?? "", region: self.vehicle.region ?? "", hardware: self.engine.hardware,
            policy: self.policy, initialBackoff: self.initialBackoff, maxBackoff: self.maxBackoff,
            drainSeconds: self.drainSeconds, http2: self.tunnelHTTP2, tls: self.gateway.tls)
    }

    /// The replicas the car's tunnels share (issue #21): `gateway.address` and `gateway.addresses`,
    /// distinct, each an IP literal (one replica) or a host name (every record a replica), with
    /// `gateway.tunnels` slots and the reconnect backoff.
    package func replicaDirectory() -> ReplicaDirectory {
        var seen: Set<Gateway.HostPort> = []
        let addresses = ([Gateway.HostPort(host: self.gateway.host, port: self.gateway.port)] + self.gateway.others)
            .filter { seen.insert($0).inserted }
        return ReplicaDirectory(
            configuration: .init(
                tunnels: self.gateway.tunnels, backoff: Backoff(initial: self.initialBackoff, maximum: self.maxBackoff),
                avoidDraining: max(5, Double(self.maxBackoff.nanoseconds) / 1e9)),
            configured: addresses.map { .init(host: $0.host, port: $0.port) })
    }
}
