public import NIOCore
import NIOPosix
public import NIOSSL

/// Binds a listening socket that serves HTTP/2 and HTTP/1.1 to a responder.
public enum HTTPServer {
    /// Binds and starts accepting.
    /// - Parameters:
    ///   - host: address to bind, e.g. `127.0.0.1`.
    ///   - port: port, `0` for any free one (read it from the returned channel's `localAddress`).
    ///   - group: event loops for the listener and its connections.
    ///   - responder: serves every request.
    ///   - configuration: HTTP/2 settings and limits.
    ///   - tls: when given, TLS with ALPN; otherwise cleartext with preface detection.
    ///   - childInitializer: runs first on every accepted channel (e.g. a quiescing collector).
    /// - Returns: the listening channel.
    public static func bind(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        responder: any HTTPServerResponder,
        configuration: HTTP2Configuration = .defaults,
        tls: NIOSSLContext? = nil,
        serverInitializer: (@Sendable (any Channel) -> EventLoopFuture<Void>)? = nil,
        childInitializer: (@Sendable (any Channel) throws -> Void)? = nil
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                serverInitializer?(channel) ?? channel.eventLoop.makeSucceededVoidFuture()
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try childInitializer?(channel)
                    if let tls {
                        try HTTPServerPipeline.configureTLS(
                            channel, sslContext: tls, responder: responder, configuration: configuration)
                    } else {
                        try HTTPServerPipeline.configureCleartext(
                            channel, responder: responder, configuration: configuration)
                    }
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// A Sendable handle on an HTTP/2 connection for use from other threads.
public struct HTTP2ConnectionHandle: Sendable {
    /// The connection's channel.
    public let channel: any Channel
    private let handler: NIOLoopBound<HTTP2ConnectionHandler>

    /// Wraps a handler; call on its event loop.
    public init(_ handler: HTTP2ConnectionHandler, channel: any Channel) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    /// The connection's event loop.
    public var eventLoop: any EventLoop { self.channel.eventLoop }

    /// The handler; only on ``eventLoop``.
    public var onLoop: HTTP2ConnectionHandler { self.handler.value }

    /// Runs `body` with the handler on its event loop.
    public func execute(_ body: @escaping @Sendable (HTTP2ConnectionHandler) -> Void) {
        let handler = self.handler
        self.eventLoop.executeOrRun { body(handler.value) }
    }

    /// Sends a PING and returns the round trip.
    public func ping() -> EventLoopFuture<TimeAmount> {
        let handler = self.handler
        return self.eventLoop.flatSubmit { handler.value.ping() }
    }
}
