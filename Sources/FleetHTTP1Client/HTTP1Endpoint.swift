package import NIOCore
package import NIOHTTP1
import NIOPosix
package import NIOSSL

/// Where an upstream listens, from its base URL (`http://host:port/prefix`, or `https://` with a TLS
/// context), and how a connection to it is opened: swift-nio-ssl's `NIOSSLClientHandler` for https
/// (SNI and the certificate's name checked against the host, or its IP address for an IP literal),
/// the writer of its framed requests (``HTTP1RequestWriter``), NIO's response decoder, then the
/// ``HTTP1ClientConnection``.
package struct HTTP1Endpoint: Sendable {
    /// The base URL is not `http://host[:port][/path]`, nor `https://…` with a TLS context.
    package struct Unsupported: Error, CustomStringConvertible {
        package var url: String
        package var description: String {
            "the URL '\(self.url)' is not http://host[:port][/path] (nor https://… with TLS configured)"
        }
    }

    package let host: String
    package let port: Int
    /// The path before the request's own (`/v1`).
    package let pathPrefix: String
    /// The `Host` header.
    package let authority: String
    /// The host when it is an IP literal. A name (`localhost`) is resolved at each connect, which
    /// tries every address it has: the first alone (`::1` for `localhost` on most Linux hosts) would
    /// refuse every request to a server listening on 127.0.0.1 only.
    package let address: SocketAddress?
    package let connectTimeout: TimeAmount
    /// For `https://`: the client context (its trust roots); nil for plain HTTP.
    package let tls: NIOSSLContext?

    /// - Parameter tls: the context for an `https://` URL (which is refused without one); ignored for `http://`.
    package init(baseURL: String, connectTimeout: TimeAmount, tls: NIOSSLContext? = nil) throws {
        let scheme: Substring
        if baseURL.hasPrefix("http://") {
            scheme = "http://"
            self.tls = nil
        } else if baseURL.hasPrefix("https://"), let tls {
            scheme = "https://"
            self.tls = tls
        } else {
            throw Unsupported(url: baseURL)
        }
        let rest = baseURL.dropFirst(scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var host = Substring(authority)
        var port = self.tls == nil ? 80 : 443
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                throw Unsupported(url: baseURL)
            }
            host = authority[..<colon]
            port = number
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, !host.contains("@") else { throw Unsupported(url: baseURL) }
        // Authority and prefix go into each request's head as they are: visible ASCII only (no space or
        // control byte to end a line early; a name or path beyond ASCII must come percent-encoded).
        guard rest.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { throw Unsupported(url: baseURL) }
        self.host = String(host)
        self.port = port
        self.pathPrefix = String(rest[slash...])
        self.authority = String(authority)
        self.address = try? SocketAddress(ipAddress: self.host, port: port)
        self.connectTimeout = connectTimeout
    }

    /// `POST <prefix><path>` of the JSON `body`, asking for `accept` (SSE unless told: a `stream: false`
    /// request asks for JSON): the endpoint's `host`, `content-type` and `accept`, then the `extra`
    /// headers, then `content-length` (``HTTP1Request``).
    package func post(
        path: String, body: ByteBuffer, headers extra: [(name: String, value: String)] = [],
        accept: String = "text/event-stream"
    ) -> HTTP1Request {
        HTTP1Request(target: self.pathPrefix + path, host: self.authority, accept: accept, headers: extra, body: body)
    }

    /// A connection's handlers after TLS, in pipeline order, ending in `connection`.
    package static func handlers(ending connection: HTTP1ClientConnection) -> [any ChannelHandler] {
        [
            HTTP1RequestWriter(),
            HTTP1ResponseByteWatch(connection: connection),
            ByteToMessageHandler(
                HTTPResponseDecoder(
                    leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: .init()
                )),
            connection,
        ]
    }

    /// Opens a connection on `eventLoop` ending in `handler`.
    func bootstrap(on eventLoop: any EventLoop, handler: HTTP1ClientConnection) -> EventLoopFuture<any Channel> {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [tls = self.tls, host = self.host, literal = self.address != nil] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // SNI is a name: an IP literal sends none, and is checked against the certificate's IP SANs.
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: literal ? nil : host))
                    }
                    try channel.pipeline.syncOperations.addHandlers(Self.handlers(ending: bound.value))
                }
            }
        if let address = self.address { return bootstrap.connect(to: address) }
        return bootstrap.connect(host: self.host, port: self.port)
    }
}
