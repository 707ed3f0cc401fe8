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
    }

    public var v: Int
    public var type: Kind
    /// Addresses (`host:port`) to dial instead, for `reconnect`.
    public var to: [String]?
    /// A reason for the car's logs.
    public var reason: String?

    public init(type: Kind, to: [String]? = nil, reason: String? = nil) {
        self.v = FleetStatus.version
        self.type = type
        self.to = to
        self.reason = reason
    }
}
