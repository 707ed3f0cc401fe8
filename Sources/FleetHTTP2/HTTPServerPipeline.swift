public import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
public import NIOSSL
import NIOTLS

/// Sets up server-side channels: HTTP/2 (libnghttp2) and HTTP/1.1 on one port.
public enum HTTPServerPipeline {
    /// Configures an accepted cleartext channel: a client that opens with the HTTP/2 connection
    /// preface gets HTTP/2 (prior knowledge, h2c); anything else gets HTTP/1.1.
    /// - Parameter proxyProtocol: expect a PROXY protocol v2 header first (behind an L4 load
    ///   balancer); its source address becomes the connection's remote address.
    public static func configureCleartext(
        _ channel: any Channel,
        responder: any HTTPServerResponder,
        configuration: HTTP2Configuration,
        proxyProtocol: Bool = false
    ) throws {
        let proxied = ProxiedAddress()
        if proxyProtocol {
            try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(proxied: proxied))
        }
        try channel.pipeline.syncOperations.addHandler(
            HTTPProtocolDetector(responder: responder, configuration: configuration, proxied: proxied))
    }

    /// Configures an accepted TLS channel: ALPN `h2` gets HTTP/2, `http/1.1` (or none) HTTP/1.1.
    /// The TLS context must offer ``alpnProtocols``.
    public static func configureTLS(
        _ channel: any Channel,
        sslContext: NIOSSLContext,
        responder: any HTTPServerResponder,
        configuration: HTTP2Configuration
    ) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
        try sync.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    if case .negotiated("h2") = result {
                        try Self.addHTTP2(
                            channel, role: .server(responder), configuration: configuration, httpProtocol: "h2",
                            isTLS: true)
                    } else {
                        try Self.addHTTP1(channel, responder: responder, isTLS: true)
                    }
                }
            })
    }

    /// The ALPN protocols a TLS listener offers, most preferred first.
    public static let alpnProtocols = ["h2", "http/1.1"]

    /// Adds an HTTP/2 connection handler in the given role; returns it.
    @discardableResult
    public static func addHTTP2(
        _ channel: any Channel,
        role: HTTP2ConnectionHandler.Role,
        configuration: HTTP2Configuration,
        httpProtocol: String = "h2c",
        isTLS: Bool = false,
        remoteAddress: SocketAddress? = nil
    ) throws -> HTTP2ConnectionHandler {
        let handler = HTTP2ConnectionHandler(
            role: role,
            configuration: configuration,
            connectionInfo: HTTPConnectionInfo(
                remoteAddress: remoteAddress ?? channel.remoteAddress, localAddress: channel.localAddress,
                httpProtocol: httpProtocol, isTLS: isTLS)
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        return handler
    }

    static func addHTTP1(
        _ channel: any Channel, responder: any HTTPServerResponder, isTLS: Bool, remoteAddress: SocketAddress? = nil
    ) throws {
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try sync.addHandler(HTTP1KeepAliveHandler())
        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: isTLS))
        try sync.addHandler(
            HTTP1ServerStreamHandler(
                responder: responder,
                connectionInfo: HTTPConnectionInfo(
                    remoteAddress: remoteAddress ?? channel.remoteAddress, localAddress: channel.localAddress,
                    httpProtocol: "http/1.1", isTLS: isTLS)))
    }
}

/// Looks at the first bytes of a cleartext connection and installs HTTP/2 or HTTP/1.1 behind itself.
final class HTTPProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// RFC 9113 §3.4.
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let responder: any HTTPServerResponder
    private let configuration: HTTP2Configuration
    private let proxied: ProxiedAddress
    private var buffered: ByteBuffer?

    init(responder: any HTTPServerResponder, configuration: HTTP2Configuration, proxied: ProxiedAddress) {
        self.responder = responder
        self.configuration = configuration
        self.proxied = proxied
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if var buffered = self.buffered {
            buffered.writeBuffer(&incoming)
            self.buffered = buffered
        } else {
            self.buffered = incoming
        }
        let bytes = self.buffered!.readableBytesView
        let n = min(bytes.count, Self.preface.count)
        let matches = bytes.prefix(n).elementsEqual(Self.preface.prefix(n))
        if matches && n < Self.preface.count { return }  // wait for more
        do {
            if matches {
                try HTTPServerPipeline.addHTTP2(
                    context.channel, role: .server(self.responder), configuration: self.configuration,
                    remoteAddress: self.proxied.source)
            } else {
                try HTTPServerPipeline.addHTTP1(
                    context.channel, responder: self.responder, isTLS: false, remoteAddress: self.proxied.source)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        let data = self.buffered!
        self.buffered = nil
        context.fireChannelRead(NIOAny(data))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
