import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP forwarder: every connection accepted on ``port`` is relayed byte for byte to a
/// target port on 127.0.0.1 — one more address for the same server, as a load balancer's second
/// IP is — and counted.
public final class TCPForwarder: Sendable {
    /// The port it listens on (127.0.0.1).
    public let port: Int
    private let channel: any Channel
    private let counter: Counter

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
        /// The accepted connections, for ``TCPForwarder/closeAll()``.
        let accepted = Mutex<[any Channel]>([])
    }

    /// Relays one side's bytes to the other connection, and its close.
    private final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let peer: any Channel
        init(peer: any Channel) { self.peer = peer }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.peer.writeAndFlush(self.unwrapInboundIn(data), promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.peer.close(promise: nil)
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    private init(port: Int, channel: any Channel, counter: Counter) {
        self.port = port
        self.channel = channel
        self.counter = counter
    }

    /// Listens on 127.0.0.1, port 0, forwarding to 127.0.0.1:`target`.
    public static func start(to target: Int) async throws -> TCPForwarder {
        let counter = Counter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                counter.value.add(1, ordering: .relaxed)
                counter.accepted.withLock { $0.append(inbound) }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { $0.pipeline.addHandler(Relay(peer: inbound)) }
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { inbound.pipeline.addHandler(Relay(peer: $0)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TCPForwarder(port: channel.localAddress?.port ?? 0, channel: channel, counter: counter)
    }

    /// Connections accepted so far.
    public var connections: Int { self.counter.value.load(ordering: .relaxed) }

    /// Closes every relayed connection now, both sides (a network blip between two healthy ends);
    /// new connections are still relayed.
    public func closeAll() {
        let channels = self.counter.accepted.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Stops listening (relayed connections close with their ends).
    public func stop() { self.channel.close(promise: nil) }
}
