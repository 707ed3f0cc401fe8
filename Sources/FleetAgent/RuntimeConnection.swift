import NIOCore
import NIOHTTP1

/// One keep-alive HTTP/1.1 connection to the inference runtime, as the last handler of its channel
/// (`HTTPRequestEncoder`, NIO's `HTTPResponseDecoder`, this): it sends one job's request at a time and
/// hands that job (``RuntimeResponseReceiver``) the response as NIO decodes it, on the job's loop,
/// with no future, promise or buffering per body piece (issue #19).
///
/// Back-pressure: while ``pause()`` holds, the channel's reads stop here, so the runtime's socket
/// fills and it stops sending; pieces already decoded from the last read are still delivered.
/// Between jobs the connection is parked in its ``RuntimeConnectionPool``; a job that ends early
/// (cancel, timeout, bad stream) ``abandon()``s it: the socket closes, which stops the runtime.
final class RuntimeConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The error a job sees when the runtime closes the connection before the response ended.
    struct Closed: Error, CustomStringConvertible {
        var description: String { "the connection closed before the response ended" }
    }

    /// Weak: an engine that goes away (tests make many) takes its pools with it, not its sockets.
    private weak var pool: RuntimeConnectionPool?
    private var context: ChannelHandlerContext?
    private var receiver: (any RuntimeResponseReceiver)?
    /// Exchanges begun on this connection (more than one: a reused connection).
    private var exchanges = 0
    private var responseStarted = false
    private var keepAlive = true
    private var paused = false
    private var readPending = false
    private(set) var isClosed = false
    /// The channel, for closing from another thread (``RuntimeConnectionPool``'s deinit).
    private(set) var channel: (any Channel)?

    init(pool: RuntimeConnectionPool) {
        self.pool = pool
    }

    // MARK: From the pool and the job

    /// Sends `head` and `body` and reports the response to `receiver`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer, to receiver: any RuntimeResponseReceiver) {
        guard let context = self.context, !self.isClosed else {
            return receiver.runtimeDidFail(Closed(), retryable: self.exchanges > 0)
        }
        self.receiver = receiver
        self.exchanges += 1
        self.responseStarted = false
        self.keepAlive = head.isKeepAlive
        self.paused = false
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Stops reading the runtime until ``resume()``.
    func pause() {
        self.paused = true
    }

    func resume() {
        guard self.paused else { return }
        self.paused = false
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    /// The job is done with the exchange before its end: no more calls to it, and the connection
    /// closes (a runtime that watches for disconnects stops generating).
    func abandon() {
        self.receiver = nil
        self.close()
    }

    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.channel = context.channel
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let receiver = self.receiver else {
            // Bytes on a parked connection, or after a job let go: it cannot carry another request.
            return self.close()
        }
        self.responseStarted = true
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.keepAlive = self.keepAlive && head.isKeepAlive
            receiver.runtimeDidReceiveHead(status: head.status.code)
        case .body(let part):
            receiver.runtimeDidReceiveBody(part)
        case .end:
            self.receiver = nil
            self.paused = false
            receiver.runtimeDidEnd()
            if let pool = self.pool {
                pool.released(self, reusable: self.keepAlive && !self.isClosed)
            } else {
                self.close()
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.receiver?.runtimeDidFinishRead()
    }

    func read(context: ChannelHandlerContext) {
        if self.paused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        self.close()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
        self.fail(Closed())
        self.pool?.closed(self)
    }

    private func fail(_ error: any Error) {
        guard let receiver = self.receiver else { return }
        self.receiver = nil
        receiver.runtimeDidFail(error, retryable: self.exchanges > 1 && !self.responseStarted)
    }
}
