package import NIOCore
package import NIOHTTP1

/// One keep-alive HTTP/1.1 connection to an upstream, as the last handler of its channel
/// (``HTTP1RequestWriter``, NIO's `HTTPResponseDecoder`, this): it sends one exchange's request at a time
/// and hands that exchange's ``HTTP1ResponseReceiver`` the response on the receiver's loop, with no
/// future or promise per body piece (issue #19). The body pieces one read of the socket brings (NIO's
/// decoder makes one per chunked-encoding chunk: a streamed answer's 32 tokens often arrive in one
/// read) reach the receiver as one buffer, at the end of the read or of the response.
///
/// Back-pressure: while ``pause()`` holds, the channel's reads stop here, so the upstream's socket
/// fills and it stops sending; pieces already decoded from the last read are still delivered.
/// Between exchanges the connection is parked in its ``HTTP1ConnectionPool``; a receiver that ends
/// early (cancel, timeout, bad stream) ``abandon()``s it: the socket closes, which stops the upstream.
package final class HTTP1ClientConnection: ChannelDuplexHandler {
    package typealias InboundIn = HTTPClientResponsePart
    package typealias OutboundIn = HTTPClientRequestPart
    package typealias OutboundOut = HTTPClientRequestPart

    /// The error a receiver sees when the upstream closes the connection before the response ended.
    package struct Closed: Error, CustomStringConvertible {
        package var description: String { "the connection closed before the response ended" }
    }

    /// Weak: an owner that goes away (tests make many engines) takes its pools with it, not its sockets.
    private weak var pool: HTTP1ConnectionPool?
    private var context: ChannelHandlerContext?
    private var receiver: (any HTTP1ResponseReceiver)?
    /// Exchanges begun on this connection (more than one: a reused connection).
    private var exchanges = 0
    /// Bytes of an answer to the current exchange arrived (``HTTP1ResponseByteWatch``), a whole head or not.
    private var answerBytesSeen = false
    private var keepAlive = true
    private var paused = false
    private var readPending = false
    /// The body pieces decoded from the current read, not yet handed to the receiver.
    private var pendingBody: ByteBuffer?
    package private(set) var isClosed = false
    /// The channel, for closing from another thread (``HTTP1ConnectionPool``'s deinit).
    package private(set) var channel: (any Channel)?

    init(pool: HTTP1ConnectionPool) {
        self.pool = pool
    }

    // MARK: From the pool and the receiver

    /// Sends `request` and reports the response to `receiver`.
    func send(_ request: HTTP1Request, to receiver: any HTTP1ResponseReceiver) {
        guard let context = self.context, !self.isClosed else {
            return receiver.exchangeDidFail(Closed(), retryable: self.exchanges > 0)
        }
        self.receiver = receiver
        self.exchanges += 1
        self.answerBytesSeen = false
        self.keepAlive = true  // an HTTP/1.1 request without `connection: close`
        self.paused = false
        self.pendingBody = nil
        context.write(self.wrapOutboundOut(.head(HTTP1Request.decoderHead)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(request.bytes))), promise: nil)
    }

    /// ``HTTP1ResponseByteWatch``: bytes came from the server.
    func answerBytesArrived() {
        self.answerBytesSeen = true
    }

    /// Stops reading the upstream until ``resume()``.
    package func pause() {
        self.paused = true
    }

    package func resume() {
        guard self.paused else { return }
        self.paused = false
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    /// The receiver is done with the exchange before its end: no more calls to it, and the connection
    /// closes (an upstream that watches for disconnects stops generating).
    package func abandon() {
        self.receiver = nil
        self.close()
    }

    package func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.pool?.closed(self)
        // Reads go on while the channel closes: TLS waits for the server's close_notify.
        self.paused = false
        if self.readPending {
            self.readPending = false
            self.context?.read()
        }
        self.context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.channel = context.channel
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let receiver = self.receiver else {
            // Bytes on a parked connection, or after a receiver let go: it cannot carry another request.
            return self.close()
        }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.keepAlive = self.keepAlive && head.isKeepAlive
            receiver.exchangeDidReceiveHead(head)
        case .body(let part):
            if self.pendingBody == nil && receiver.wantsBodyPartsAtOnce {
                receiver.exchangeDidReceiveBodyPart(part)
            } else if self.pendingBody == nil {
                self.pendingBody = part
            } else {
                self.pendingBody!.writeImmutableBuffer(part)
            }
        case .end:
            self.deliverPendingBody()
            // The receiver may have let go while it read the last pieces (it closed the connection).
            guard self.receiver != nil else { return }
            self.receiver = nil
            self.paused = false
            receiver.exchangeDidEnd()
            if let pool = self.pool {
                pool.released(self, reusable: self.keepAlive && !self.isClosed)
            } else {
                self.close()
            }
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        self.deliverPendingBody()
        self.receiver?.exchangeDidFinishRead()
    }

    /// Hands the receiver what the current read brought of the body, as one buffer.
    private func deliverPendingBody() {
        guard let body = self.pendingBody else { return }
        self.pendingBody = nil
        self.receiver?.exchangeDidReceiveBody(body)
    }

    package func read(context: ChannelHandlerContext) {
        if self.paused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        self.close()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
        self.fail(Closed())
        self.pool?.closed(self)
    }

    private func fail(_ error: any Error) {
        self.pendingBody = nil
        guard let receiver = self.receiver else { return }
        self.receiver = nil
        // Retryable: the server closed or reset a reused connection before any byte of an answer — the
        // idle-close race. Not once a byte came: the server had the request.
        let retryable = self.exchanges > 1 && !self.answerBytesSeen
        receiver.exchangeDidFail(error, retryable: retryable)
    }
}
