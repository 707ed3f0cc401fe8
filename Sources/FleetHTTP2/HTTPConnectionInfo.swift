public import NIOCore

/// What a server knows of the connection a request came in on.
///
/// A value with one shared, immutable storage per connection: a responder is handed it with every
/// request, and copying it is then one reference count, not two socket addresses and a string
/// through their value witnesses (~300 instructions a request, issue #19). Setting a property gives
/// this value a storage of its own.
public struct HTTPConnectionInfo: Sendable {
    private final class Storage: Sendable {
        let remoteAddress: SocketAddress?
        let localAddress: SocketAddress?
        let httpProtocol: String
        let isTLS: Bool
        let viaProxyProtocol: Bool

        init(
            remoteAddress: SocketAddress?, localAddress: SocketAddress?, httpProtocol: String, isTLS: Bool,
            viaProxyProtocol: Bool
        ) {
            self.remoteAddress = remoteAddress
            self.localAddress = localAddress
            self.httpProtocol = httpProtocol
            self.isTLS = isTLS
            self.viaProxyProtocol = viaProxyProtocol
        }
    }

    private var storage: Storage

    public init(
        remoteAddress: SocketAddress?, localAddress: SocketAddress?, httpProtocol: String, isTLS: Bool,
        viaProxyProtocol: Bool = false
    ) {
        self.storage = Storage(
            remoteAddress: remoteAddress, localAddress: localAddress, httpProtocol: httpProtocol, isTLS: isTLS,
            viaProxyProtocol: viaProxyProtocol)
    }

    /// The socket peer.
    public var remoteAddress: SocketAddress? {
        get { self.storage.remoteAddress }
        set {
            self = Self(
                remoteAddress: newValue, localAddress: self.localAddress, httpProtocol: self.httpProtocol,
                isTLS: self.isTLS, viaProxyProtocol: self.viaProxyProtocol)
        }
    }

    /// The local address the connection was accepted on.
    public var localAddress: SocketAddress? {
        get { self.storage.localAddress }
        set {
            self = Self(
                remoteAddress: self.remoteAddress, localAddress: newValue, httpProtocol: self.httpProtocol,
                isTLS: self.isTLS, viaProxyProtocol: self.viaProxyProtocol)
        }
    }

    /// `h2`, `h2c` or `http/1.1`.
    public var httpProtocol: String {
        get { self.storage.httpProtocol }
        set {
            self = Self(
                remoteAddress: self.remoteAddress, localAddress: self.localAddress, httpProtocol: newValue,
                isTLS: self.isTLS, viaProxyProtocol: self.viaProxyProtocol)
        }
    }

    /// Whether the connection is TLS.
    public var isTLS: Bool {
        get { self.storage.isTLS }
        set {
            self = Self(
                remoteAddress: self.remoteAddress, localAddress: self.localAddress, httpProtocol: self.httpProtocol,
                isTLS: newValue, viaProxyProtocol: self.viaProxyProtocol)
        }
    }

    /// Whether the connection began with a PROXY protocol header from a configured load balancer:
    /// ``remoteAddress`` is then the source it carried (or the balancer itself for `LOCAL`), and no
    /// forwarding header on the connection is believed.
    public var viaProxyProtocol: Bool {
        get { self.storage.viaProxyProtocol }
        set {
            self = Self(
                remoteAddress: self.remoteAddress, localAddress: self.localAddress, httpProtocol: self.httpProtocol,
                isTLS: self.isTLS, viaProxyProtocol: newValue)
        }
    }

    /// Fills in the addresses not known yet (a PROXY protocol header gives the remote one) from
    /// `channel`'s: one new storage a connection at most.
    mutating func fillAddresses(from channel: any Channel) {
        guard self.remoteAddress == nil || self.localAddress == nil else { return }
        self = Self(
            remoteAddress: self.remoteAddress ?? channel.remoteAddress,
            localAddress: self.localAddress ?? channel.localAddress, httpProtocol: self.httpProtocol, isTLS: self.isTLS,
            viaProxyProtocol: self.viaProxyProtocol)
    }
}
