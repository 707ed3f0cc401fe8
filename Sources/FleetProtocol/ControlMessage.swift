/// One message on the control channel (gateway → car): `POST /fleet/v1/control` with one JSON
/// object; the car answers 204 (DESIGN.md, Contracts).
public struct ControlMessage: Codable, Sendable, Hashable {
    /// The request path.
    public static let path = "/fleet/v1/control"

    /// What the gateway tells the car.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// Reconnect, optionally to other addresses.
        case reconnect
        /// The car's credential expired: it gets no more work and its tunnel closes.
        case tokenExpired = "token-expired"
        /// The car is quarantined.
        case quarantine
    }

    public var v: Int
    public var type: Kind
    /// For `reconnect`: addresses to dial instead.
    public var to: [String]?

    public init(type: Kind, to: [String]? = nil) {
        self.v = 1
        self.type = type
        self.to = to
    }
}
