public import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
public import NIOSSL
import NIOTLS

/// Sets up server-side channels: HTTP/2 (libnghttp2) and HTTP/1.1 on one port.
public enum HTTPServerPipeline {
    /// Configures an accepted cleartext channel: a client that opens with the HTTP/2 connection
    /// preface gets HTTP/2 (prior knowledge, h2c); anything else gets HTTP/1.1.
    /// - Parameter proxyProtocol: expect a PROXY protocol v2 header first (the peer is a configured
    ///   L4 load balancer; the caller decides that from the socket peer, never from the bytes); its
    ///   source address becomes the connection's remote address. A connection without it is closed.
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
            HTTPProtocolDetector(
                responder: responder, configuration: configuration, proxied: proxied,
                preamble: Self.preambleDeadline(channel, configuration)))
    }

    /// Configures an accepted TLS channel: ALPN `h2` gets HTTP/2, `http/1.1` (or none) HTTP/1.1.
    /// The TLS context must offer ``alpnProtocols``.
    public static func configureTLS(
        _ channel: any Channel,
        sslContext: NIOSSLContext,
        responder: any HTTPServerResponder,
        configuration: HTTP2Configuration,
        proxyProtocol: Bool = false
    ) throws {
        let sync = channel.pipeline.syncOperations
        let proxied = ProxiedAddress()
        if proxyProtocol {
            try sync.addHandler(ProxyProtocolHandler(proxied: proxied))
        }
        let proxiedOnLoop = NIOLoopBound(proxied, eventLoop: channel.eventLoop)
        let preamble = Self.preambleDeadline(channel, configuration)
        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
        try sync.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                preamble.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    let proxied = proxiedOnLoop.value
                    if case .negotiated("h2") = result {
                        try Self.addHTTP2(
                            channel, role: .server(responder), configuration: configuration, httpProtocol: "h2",
                            isTLS: true, remoteAddress: proxied.source, viaProxyProtocol: proxied.received)
                    } else {
                        try Self.addHTTP1(
                            channel, responder: responder, configuration: configuration, isTLS: true,
                            remoteAddress: proxied.source, viaProxyProtocol: proxied.received)
                    }
                }
            })
    }

    /// Closes `channel` unless its protocol is known within ``HTTP2Configuration/handshakeTimeout``:
    /// the PROXY header, the TLS handshake and the bytes that tell h2c from HTTP/1.1 all count.
    /// Whoever installs the protocol's handlers cancels it; they bring their own timers.
    static func preambleDeadline(_ channel: any Channel, _ configuration: HTTP2Configuration) -> Scheduled<Void> {
        let deadline = channel.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in deadline.cancel() }
        return deadline
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
        remoteAddress: SocketAddress? = nil,
        viaProxyProtocol: Bool = false
    ) throws -> HTTP2ConnectionHandler {
        let handler = HTTP2ConnectionHandler(
            role: role,
            configuration: configuration,
            connectionInfo: HTTPConnectionInfo(
                remoteAddress: remoteAddress ?? channel.remoteAddress, localAddress: channel.localAddress,
                httpProtocol: httpProtocol, isTLS: isTLS, viaProxyProtocol: viaProxyProtocol)
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        return handler
    }

    static func addHTTP1(
        _ channel: any Channel, responder: any HTTPServerResponder, configuration: HTTP2Configuration, isTLS: Bool,
        remoteAddress: SocketAddress? = nil, viaProxyProtocol: Bool = false
    ) throws {
        let sync = channel.pipeline.syncOperations
        // Before NIO's pipelining helper, which closes an idle connection on a drain with its queue unsent.
        try sync.addHandler(HTTP1QuiesceHandler(grace: configuration.gracefulShutdownTimeout))
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
        try sync.addHandler(HTTP1ProtocolErrorResponder())  // NIO's, answering in JSON
        try sync.addHandler(HTTP1ConnectionGuard(configuration: configuration))
        try sync.addHandler(HTTP1ContinueHandler())
        try sync.addHandler(HTTP1KeepAliveHandler())
        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: isTLS))
        try sync.addHandler(
            HTTP1ServerStreamHandler(
                responder: responder,
                connectionInfo: HTTPConnectionInfo(
                    remoteAddress: remoteAddress ?? channel.remoteAddress, localAddress: channel.localAddress,
                    httpProtocol: "http/1.1", isTLS: isTLS, viaProxyProtocol: viaProxyProtocol)))
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
    private let preamble: Scheduled<Void>
    private var buffered: ByteBuffer?

    init(
        responder: any HTTPServerResponder, configuration: HTTP2Configuration, proxied: ProxiedAddress,
        preamble: Scheduled<Void>
    ) {
        self.responder = responder
        self.configuration = configuration
        self.proxied = proxied
        self.preamble = preamble
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
        if matches && n < Self.preface.count { return }  // wait for more (the preamble deadline runs)
        self.preamble.cancel()
        do {
            if matches {
                try HTTPServerPipeline.addHTTP2(
                    context.channel, role: .server(self.responder), configuration: self.configuration,
                    remoteAddress: self.proxied.source, viaProxyProtocol: self.proxied.received)
            } else {
                try HTTPServerPipeline.addHTTP1(
                    context.channel, responder: self.responder, configuration: self.configuration, isTLS: false,
                    remoteAddress: self.proxied.source, viaProxyProtocol: self.proxied.received)
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
