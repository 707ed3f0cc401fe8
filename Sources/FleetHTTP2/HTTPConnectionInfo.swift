public import NIOCore

/// What a server knows of the connection a request came in on.
///
/// A value with one shared, immutable storage per connection: a responder is handed it with every
/// request, and copying it is then one reference count, not two socket addresses and a string
/// through their value witnesses (~300 instructions a request, issue #19). Setting a property gives
/// this value a storage of its own.
public struct HTTPConnectionInfo: Sendable {
    private struct Fields: Sendable {
        var remoteAddress: SocketAddress?
        var localAddress: SocketAddress?
        var httpProtocol: String
        var isTLS: Bool
        var viaProxyProtocol: Bool
    }

    private final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    public init(
        remoteAddress: SocketAddress?, localAddress: SocketAddress?, httpProtocol: String, isTLS: Bool,
        viaProxyProtocol: Bool = false
    ) {
        self.storage = Storage(
            Fields(
                remoteAddress: remoteAddress, localAddress: localAddress, httpProtocol: httpProtocol, isTLS: isTLS,
                viaProxyProtocol: viaProxyProtocol))
    }

    /// A new storage with `change` made to a copy of the fields.
    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = self.storage.fields
        change(&fields)
        self.storage = Storage(fields)
    }

    /// The socket peer.
    public var remoteAddress: SocketAddress? {
        get { self.storage.fields.remoteAddress }
        set { self.update { $0.remoteAddress = newValue } }
    }

    /// The local address the connection was accepted on.
    public var localAddress: SocketAddress? {
        get { self.storage.fields.localAddress }
        set { self.update { $0.localAddress = newValue } }
    }

    /// `h2`, `h2c` or `http/1.1`.
    public var httpProtocol: String {
        get { self.storage.fields.httpProtocol }
        set { self.update { $0.httpProtocol = newValue } }
    }

    /// Whether the connection is TLS.
    public var isTLS: Bool {
        get { self.storage.fields.isTLS }
        set { self.update { $0.isTLS = newValue } }
    }

    /// Whether the connection began with a PROXY protocol header from a configured load balancer:
    /// ``remoteAddress`` is then the source it carried (or the balancer itself for `LOCAL`), and no
    /// forwarding header on the connection is believed.
    public var viaProxyProtocol: Bool {
        get { self.storage.fields.viaProxyProtocol }
        set { self.update { $0.viaProxyProtocol = newValue } }
    }

    /// Fills in the addresses not known yet (a PROXY protocol header gives the remote one) from
    /// `channel`'s: one new storage a connection at most.
    mutating func fillAddresses(from channel: any Channel) {
        guard self.remoteAddress == nil || self.localAddress == nil else { return }
        self.update {
            $0.remoteAddress = $0.remoteAddress ?? channel.remoteAddress
            $0.localAddress = $0.localAddress ?? channel.localAddress
        }
    }
}
