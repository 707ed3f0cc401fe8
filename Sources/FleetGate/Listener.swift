public import Logging
public import NIOCore
import NIOExtras
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// A listening socket as a ServiceLifecycle service.
///
/// On graceful shutdown it stops accepting and sends every connection a
/// `ChannelShouldQuiesceEvent` (swift-nio-extras' `ServerQuiescingHelper`): HTTP/2 connections
/// GOAWAY and close when their streams finish; `run()` returns once all are closed.
public final class Listener: Service, Sendable {
    /// A name for logs ("client", "tunnel", "admin").
    public let name: String
    let host: String
    let port: Int
    let group: any EventLoopGroup
    let logger: Logger
    let childInitializer: @Sendable (any Channel) throws -> Void
    /// Bind any free port when `port` is taken (the demo), instead of failing.
    let fallbackToAnyPort: Bool
    private let bound: EventLoopPromise<SocketAddress>
    private let onBound: @Sendable (SocketAddress) -> Void

    public init(
        name: String, host: String, port: Int, group: any EventLoopGroup, logger: Logger,
        fallbackToAnyPort: Bool = false,
        onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in },
        childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
        self.fallbackToAnyPort = fallbackToAnyPort
        self.childInitializer = childInitializer
        self.onBound = onBound
        self.bound = group.any().makePromise(of: SocketAddress.self)
    }

    private func bindFailed(_ error: any Error) -> GatewayError {
        let failure = GatewayError(
            code: .bindFailed, message: "\(self.name) listener: cannot bind \(self.host):\(self.port): \(error)")
        self.bound.fail(failure)
        return failure
    }

    /// The address once bound (the real port when configured with 0).
    public var boundAddress: EventLoopFuture<SocketAddress> { self.bound.futureResult }

    public func run() async throws {
        let quiesce = ServerQuiescingHelper(group: self.group)
        let childInitializer = self.childInitializer
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try childInitializer(channel) }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: self.host, port: self.port).get()
        } catch  where self.fallbackToAnyPort && self.port != 0 {
            self.logger.warning(
                "Port taken; using any free port",
                metadata: ["fleet.listener": "\(self.name)", "fleet.port": "\(self.port)"])
            do { channel = try await bootstrap.bind(host: self.host, port: 0).get() } catch {
                throw self.bindFailed(error)
            }
        } catch {
            throw self.bindFailed(error)
        }
        let address = channel.localAddress!
        self.logger.info("Listening", metadata: ["fleet.listener": "\(self.name)", "fleet.address": "\(address)"])
        self.bound.succeed(address)
        self.onBound(address)
        let done = self.group.any().makePromise(of: Void.self)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await channel.closeFuture.get()
                try? await done.futureResult.get()
            } onGracefulShutdown: {
                quiesce.initiateShutdown(promise: done)
            }
        } onCancel: {
            // Cancellation is not graceful: close the listener and every connection now.
            quiesce.initiateShutdown(promise: nil)
            channel.close(promise: nil)
            done.succeed()
        }
    }
}

/// Whether every listener is bound and the gateway is not shutting down.
public final class Readiness: Sendable {
    private let state = Mutex<(bound: Int, expected: Int, stopping: Bool)>((0, 0, false))

    public init(expected: Int) { self.state.withLock { $0.expected = expected } }

    func listenerBound() { self.state.withLock { $0.bound += 1 } }
    func stopping() { self.state.withLock { $0.stopping = true } }

    /// True when ready for traffic.
    public var isReady: Bool { self.state.withLock { $0.bound >= $0.expected && !$0.stopping } }
}
