public import NIOCore
import NIOPosix
import Synchronization

/// A raw TCP connection for tests that speak bytes: sends what it is given and collects
/// everything the server sends until it closes.
public final class RawConnection: ChannelInboundHandler, Sendable {
    public typealias InboundIn = ByteBuffer
    private let bytes = Mutex<[UInt8]>([])

    /// The connection's channel.
    public private(set) nonisolated(unsafe) var channel: (any Channel)!

    private init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.bytes.withLock { $0 += buffer.readableBytesView }
    }

    /// Everything received so far.
    public var received: [UInt8] { self.bytes.withLock { $0 } }

    /// Connects to `127.0.0.1:port`. `receiveBuffer`: the socket's `SO_RCVBUF`; `reading: false`: nothing is
    /// read until ``resumeReading()``, so the server's writes fill the socket (a client that stops reading).
    public static func connect(port: Int, receiveBuffer: Int? = nil, reading: Bool = true) async throws -> RawConnection
    {
        let raw = RawConnection()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: reading)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        raw.channel =
            try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(raw) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return raw
    }

    /// Starts reading on a connection made with `reading: false`.
    public func resumeReading() async throws {
        try await self.channel.setOption(.autoRead, value: true)
        self.channel.read()
    }

    /// Sends bytes.
    public func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Waits until the server closes the connection.
    public func waitForClose() async throws {
        try await self.channel.closeFuture.get()
    }
}
