public import Logging
public import NIOCore
import NIOExtras
import NIOPosix
public import NIOSSL
public import ServiceLifecycle

/// A listening socket as a ServiceLifecycle service: one server bootstrap for every listener
/// (client, TLS, tunnel, admin, the agent's local server), each told apart only by its
/// ``ChildChannelConfigurator``.
///
/// Responsibilities:
/// 1. bind (`port` 0 picks a free port; ``boundAddress`` tells which), optionally falling back to
///    any free port when the configured one is taken (the demo);
/// 2. configure every accepted channel with the configurator, which is asked per connection, so a
///    reloaded TLS certificate or HTTP/2 limit applies to the next connection;
/// 3. on graceful shutdown stop accepting and send every connection a `ChannelShouldQuiesceEvent`
///    (swift-nio-extras' `ServerQuiescingHelper`): HTTP/2 connections GOAWAY and close when their
///    streams finish; ``run()`` returns once all are closed. Cancellation closes everything at once.
///
/// ```swift
/// let server = HTTPServer(name: "api", host: "127.0.0.1", port: 0, group: group, logger: logger,
///                         configurator: .http(responder: responder))
/// try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public final class HTTPServer: Service, Sendable {
    /// What to install on an accepted channel.
    public struct ChildChannelConfigurator: Sendable {
        /// Configures one accepted channel (on its event loop).
        public let configure: @Sendable (any Channel) throws -> Void

        /// A custom pipeline.
        public init(_ configure: @escaping @Sendable (any Channel) throws -> Void) { self.configure = configure }

        /// HTTP/2 and HTTP/1.1 to `responder`: TLS with ALPN when `tls` returns a context, otherwise
        /// cleartext with preface detection. `http2` and `tls` are asked per connection (reloads).
        /// `proxyProtocol` decides per connection, from the socket peer, whether a PROXY protocol v2
        /// header must come first (only from configured load balancers; never from the bytes).
        public static func http(
            responder: any HTTPServerResponder,
            http2: @escaping @Sendable () -> HTTP2Configuration = { .defaults },
            tls: @escaping @Sendable () -> NIOSSLContext? = { nil },
            proxyProtocol: @escaping @Sendable (any Channel) -> Bool = { _ in false }
        ) -> Self {
            Self { channel in
                if let context = tls() {
                    try HTTPServerPipeline.configureTLS(
                        channel, sslContext: context, responder: responder, configuration: http2(),
                        proxyProtocol: proxyProtocol(channel))
                } else {
                    try HTTPServerPipeline.configureCleartext(
                        channel, responder: responder, configuration: http2(), proxyProtocol: proxyProtocol(channel))
                }
            }
        }
    }

    /// A name for logs ("client", "tunnel", "admin").
    public let name: String
    let host: String
    let port: Int
    let group: any EventLoopGroup
    let logger: Logger
    let configurator: ChildChannelConfigurator
    let fallbackToAnyPort: Bool
    private let bound: EventLoopPromise<SocketAddress>
    private let onBound: @Sendable (SocketAddress) -> Void

    /// Creates the server; nothing binds until ``run()``.
    /// - Parameters:
    ///   - fallbackToAnyPort: bind any free port when `port` is taken, instead of failing.
    ///   - onBound: called once bound, with the address.
    public init(
        name: String, host: String, port: Int, group: any EventLoopGroup, logger: Logger,
        fallbackToAnyPort: Bool = false, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in },
        configurator: ChildChannelConfigurator
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
        self.fallbackToAnyPort = fallbackToAnyPort
        self.configurator = configurator
        self.onBound = onBound
        self.bound = group.any().makePromise(of: SocketAddress.self)
    }

    /// A server made and never run (a gateway built, then dropped: a test, or a start that failed after
    /// this listener was made) fails its address: an unfulfilled promise traps debug builds.
    deinit {
        self.bound.fail(HTTPServerNeverRan())
    }

    /// The address once bound (the real port when configured with 0); fails if binding fails.
    public var boundAddress: EventLoopFuture<SocketAddress> { self.bound.futureResult }

    /// The one server bootstrap: backlog, address reuse, no Nagle, quiescing, the configurator.
    static func bootstrap(
        group: any EventLoopGroup, quiesce: ServerQuiescingHelper?, configurator: ChildChannelConfigurator
    ) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let quiesce {
                        try channel.pipeline.syncOperations.addHandler(
                            quiesce.makeServerChannelHandler(channel: channel))
                    }
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configurator.configure(channel) }
            }
    }

    /// Binds and serves until graceful shutdown (then drains) or cancellation.
    public func run() async throws {
        var quiesce = ServerQuiescingHelper(group: self.group)
        let channel: any Channel
        do {
            channel = try await Self.bootstrap(group: self.group, quiesce: quiesce, configurator: self.configurator)
                .bind(host: self.host, port: self.port).get()
        } catch  where self.fallbackToAnyPort && self.port != 0 {
            self.logger.warning(
                "Port taken; using any free port",
                metadata: ["fleet.listener": "\(self.name)", "fleet.port": "\(self.port)"])
            // A helper serves the first server channel it was given: the one whose bind failed. Its
            // shutdown then "closed" that channel and never this one, and a second demo beside a first
            // (its ports taken) ignored SIGTERM (helper-100).
            quiesce = ServerQuiescingHelper(group: self.group)
            do {
                channel = try await Self.bootstrap(group: self.group, quiesce: quiesce, configurator: self.configurator)
                    .bind(host: self.host, port: 0).get()
            } catch {
                throw self.bindFailed(error)
            }
        } catch {
            throw self.bindFailed(error)
        }
        guard let address = channel.localAddress else {
            channel.close(promise: nil)
            throw self.bindFailed(ChannelError.ioOnClosedChannel)
        }
        self.logger.info("Listening", metadata: ["fleet.listener": "\(self.name)", "fleet.address": "\(address)"])
        self.bound.succeed(address)
        self.onBound(address)
        let done = self.group.any().makePromise(of: Void.self)
        let quiescing = quiesce
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await channel.closeFuture.get()
                try? await done.futureResult.get()
            } onGracefulShutdown: {
                quiescing.initiateShutdown(promise: done)
            }
        } onCancel: {
            // Cancellation is not graceful: close the listener and every connection now.
            quiescing.initiateShutdown(promise: nil)
            channel.close(promise: nil)
            done.succeed()
        }
    }

    private func bindFailed(_ error: any Error) -> HTTPServerError {
        let failure = HTTPServerError(name: self.name, host: self.host, port: self.port, cause: error)
        self.bound.fail(failure)
        return failure
    }

    /// Binds a bare server channel (no service, no quiescing) for tests and benchmarks; close it when done.
    /// - Parameters:
    ///   - host: address to bind, e.g. `127.0.0.1`.
    ///   - port: port, `0` for any free one (read it from the returned channel's `localAddress`).
    ///   - group: event loops for the listener and its connections.
    ///   - responder: serves every request.
    ///   - configuration: HTTP/2 settings and limits.
    ///   - tls: when given, TLS with ALPN; otherwise cleartext with preface detection.
    ///   - childInitializer: runs first on every accepted channel.
    /// - Returns: the listening channel.
    public static func bind(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        responder: any HTTPServerResponder,
        configuration: HTTP2Configuration = .defaults,
        tls: NIOSSLContext? = nil,
        childInitializer: (@Sendable (any Channel) throws -> Void)? = nil
    ) async throws -> any Channel {
        let http = ChildChannelConfigurator.http(responder: responder, http2: { configuration }, tls: { tls })
        return try await Self.bootstrap(
            group: group, quiesce: nil,
            configurator: ChildChannelConfigurator { channel in
                try childInitializer?(channel)
                try http.configure(channel)
            }
        ).bind(host: host, port: port).get()
    }
}

/// A server could not bind.
public struct HTTPServerError: Error, CustomStringConvertible {
    /// The server's name.
    public var name: String
    /// The address it tried.
    public var host: String
    public var port: Int
    /// Why.
    public var cause: any Error
    public var description: String { "\(self.name) listener: cannot bind \(self.host):\(self.port): \(self.cause)" }
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

/// ``HTTPServer/boundAddress`` of a server that was released without running.
public struct HTTPServerNeverRan: Error, CustomStringConvertible {
    public var description: String { "the listener was released without running" }
}
