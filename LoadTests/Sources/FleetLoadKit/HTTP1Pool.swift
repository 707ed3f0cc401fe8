import FleetHTTP2
import HTTPTypes
import NIOCore
import NIOPosix

/// The load client's HTTP/1.1 keep-alive connections, on one event loop: a request takes an idle
/// connection of its key (the origin address with PROXY v2, one pool otherwise) or opens a new
/// one — open loop, so never waits for one to free — and a connection whose response ended
/// goes back to its key's idle list.
final class HTTP1Pool: Sendable {
    let host: String
    let port: Int
    let loop: any EventLoop
    /// Made on the loop at first use (a loop-bound value cannot be made off it).
    private let box: NIOLoopBoundBox<State?>

    final class State {
        var idle: [String: [HTTP1ClientConnection]] = [:]
        var all: [any Channel] = []
    }

    init(host: String, port: Int, loop: any EventLoop) {
        self.host = host
        self.port = port
        self.loop = loop
        self.box = NIOLoopBoundBox.makeEmptyBox(valueType: State.self, eventLoop: loop)
    }

    /// The pool's state (on the loop only).
    private var state: State {
        if let state = self.box.value { return state }
        let state = State()
        self.box.value = state
        return state
    }

    /// Sends a request on a connection of `key`; `exchange` makes its delegate when it leaves (the
    /// time to connect, if a connection must be opened, counts in the request's latency).
    func send(
        _ head: HTTPRequest, body: ByteBuffer, key: String, socketHandlers: (@Sendable (any Channel) throws -> Void)?,
        exchange: @escaping @Sendable () -> (RequestResult, ClientStream)
    ) {
        self.loop.execute {
            let state = self.state
            let (_, delegate) = exchange()
            while let connection = state.idle[key]?.popLast() {
                if connection.isIdle {
                    delegate.stream = connection
                    return connection.send(head, body: body, delegate: delegate)
                }
            }
            let bound = NIOLoopBound(delegate, eventLoop: self.loop)
            ClientBootstrap(group: self.loop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try socketHandlers?(channel)
                        try HTTP1ClientConnection.install(on: channel)
                    }
                }
                .connect(host: self.host, port: self.port)
                .whenComplete { result in
                    let delegate = bound.value
                    guard case .success(let channel) = result,
                        let connection = try? channel.pipeline.syncOperations.handler(type: HTTP1ClientConnection.self)
                    else { return delegate.streamDidClose(error: .connectionClosed) }
                    let state = self.state
                    state.all.append(channel)
                    connection.onIdle = { state.idle[key, default: []].append($0) }
                    delegate.stream = connection
                    connection.send(head, body: body, delegate: delegate)
                }
        }
    }

    /// Closes every connection it opened.
    func closeAll() {
        self.loop.execute {
            for channel in self.state.all { channel.close(promise: nil) }
        }
    }
}
