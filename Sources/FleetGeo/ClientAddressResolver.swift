import Foundation

/// Where the client address of a request came from, and whether it can be used.
public enum ClientAddress: Sendable, Hashable {
    /// The connection's own peer: the socket peer, or the source a PROXY protocol header from a
    /// configured load balancer carried. Nil: no IP transport (a Unix socket).
    case peer(IPAddress?)
    /// The address a trusted proxy wrote into `X-Forwarded-For`.
    case forwarded(IPAddress)
    /// A trusted proxy forwarded a hop that is not an address (`ip:port`, `[v6]:port`, `unknown`,
    /// an obfuscated identifier, an empty value, a non-canonical IPv4 spelling). The origin is `unknown`.
    case unusable
}

/// Resolves the client address from the connection's peer and, only when the socket peer is a
/// trusted proxy, from `X-Forwarded-For`, walking right to left past trusted hops.
///
/// Rules (docs/regions.md, "Client addresses"):
/// - the peer is believed; `X-Forwarded-For` only when the *socket* peer is in ``trusted``;
/// - a peer address that came from a PROXY protocol header never makes `X-Forwarded-For`
///   believed (an L4 balancer does not write it, so any there came from the client);
/// - the first hop from the right that is not itself trusted is the client; a hop that is not a
///   plain address makes the result ``ClientAddress/unusable`` — never the proxy's own address.
public struct ClientAddressResolver: Sendable {
    public var trusted: [CIDR]
    public init(trusted: [CIDR]) { self.trusted = trusted }

    public func isTrusted(_ address: IPAddress) -> Bool { self.trusted.contains { $0.contains(address) } }

    /// The client's address.
    /// - Parameters:
    ///   - peer: the connection's peer.
    ///   - viaProxyProtocol: `peer` came from a PROXY protocol header, not the socket.
    ///   - forwardedFor: every `X-Forwarded-For` value, in order.
    public func resolve(peer: IPAddress?, viaProxyProtocol: Bool = false, forwardedFor: [String]) -> ClientAddress {
        guard let peer, !viaProxyProtocol, self.isTrusted(peer), !forwardedFor.isEmpty else { return .peer(peer) }
        let hops = forwardedFor.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
        var candidate: IPAddress?
        for hop in hops.reversed() {
            // Plain addresses only: no brackets, ports or zones from a proxy (IPAddress accepts those).
            let text = hop.trimmingCharacters(in: .whitespaces)
            guard !text.contains("["), !text.contains("%"), let address = IPAddress(text) else { return .unusable }
            candidate = address
            if !self.isTrusted(address) { break }
        }
        guard let candidate else { return .unusable }
        return .forwarded(candidate)
    }
}
