/// A message on the control channel, gateway → car: `POST /fleet/v1/control` on the tunnel with
/// one JSON object; the car answers 204 (DESIGN.md, Contracts: control channel).
public struct ControlMessage: Codable, Sendable, Hashable {
    /// The path the gateway posts to.
    public static let path = "/fleet/v1/control"
    /// The largest body accepted.
    public static let maxBytes = 16 * 1024

    /// What the gateway asks.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// Finish what you run, then dial again (optionally one of ``to``): this gateway drains.
        case reconnect
        /// The car's credential expired: stop serving until it has a new one.
        case tokenExpired = "token-expired"
        /// The car is not trusted with work any more.
        case quarantine
        /// Issue #21: the tunnel addresses of the car's region's other live replicas (``to``) and
        /// of the replica sending it (``from``), so a car configured with one address learns the
        /// rest and keeps its tunnels on distinct replicas. Sent after the hello and whenever the
        /// list changes; a car that does not know the type answers 400 and carries on.
        case replicas
    }

    public var v: Int
    public var type: Kind
    /// Addresses (`host:port`) to dial instead, for `reconnect`; the other replicas, for `replicas`.
    public var to: [String]?
    /// For `replicas` and `reconnect`: the sending replica's own tunnel address (`host:port`).
    public var from: String?
    /// A reason for the car's logs.
    public var reason: String?
    /// For `reconnect`: true when the replica is not draining but moving this tunnel to one that
    /// holds fewer of the region's (``to``, issue #21): the car passes the sender over only
    /// briefly. Absent: a drain (an agent that does not know the field takes it as one).
    public var rebalance: Bool?

    public init(
        type: Kind, to: [String]? = nil, from: String? = nil, reason: String? = nil, rebalance: Bool? = nil
    ) {
        self.v = FleetStatus.version
        self.type = type
        self.to = to
        self.from = from
        self.reason = reason
        self.rebalance = rebalance
    }
}
