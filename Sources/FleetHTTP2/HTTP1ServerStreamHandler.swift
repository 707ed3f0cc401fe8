public import HTTPTypes
public import NIOCore
public import NIOHTTPTypes

/// Serves HTTP/1.1 requests through the same ``HTTPStream`` API as HTTP/2.
///
/// Responsibilities:
/// 1. turn `HTTPRequestPart`s (from swift-nio-extras' `HTTP1ToHTTPServerCodec`) into stream events
///    for one request at a time (NIO's pipelining helper queues the next);
/// 2. write the response as `HTTPResponsePart`s — chunked when no length is given, so SSE streams;
/// 3. backpressure from the socket: ``HTTPStream/isWritable`` follows the channel's writability.
///
/// HTTP/1.1 has no per-request flow control: ``HTTPStream/consume(_:)`` is a no-op and request
/// bodies are bounded by the responder's own size limit.
public final class HTTP1ServerStreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias OutboundOut = HTTPResponsePart

    private let responder: any HTTPServerResponder
    private var connectionInfo: HTTPConnectionInfo
    private var current: HTTP1Stream?
    private var context: ChannelHandlerContext?

    /// Creates the handler for one connection.
    public init(responder: any HTTPServerResponder, connectionInfo: HTTPConnectionInfo) {
        self.responder = responder
        self.connectionInfo = connectionInfo
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.connectionInfo.fillAddresses(from: context.channel)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let request):
            let stream = HTTP1Stream(context: context, handler: self)
            self.current = stream
            stream.delegate = self.responder.stream(stream, didReceive: request, connection: self.connectionInfo)
        case .body(let buffer):
            self.current?.delegate?.streamDidReceiveData(buffer)
        case .end(let trailers):
            self.current?.receivedEnd = true
            self.current?.delegate?.streamDidReceiveEnd(trailers: trailers)
            self.current?.closeIfComplete()
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        // What was held goes out after this event, not inside it: written here, it could pass the high-water
        // mark again before the handlers in front (the connection guard's stall timer) saw the connection
        // writable, and the stream's delegate would hear only `false` (helper-129).
        if context.channel.isWritable, let stream = self.current, stream.holdsBytes {
            let bound = NIOLoopBound(stream, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.writeHeld() }
        }
        self.current?.delegate?.streamWritabilityDidChange(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.current?.markClosed(error: .connectionClosed)
        self.current = nil
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parse errors are answered (400 or 431, JSON) by HTTP1ProtocolErrorResponder before us.
        self.current?.markClosed(error: HTTPStreamError(code: .protocolError, byPeer: true))
        self.current = nil
        context.close(promise: nil)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiescing = true
            if self.current == nil { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    var quiescing = false
    private var flushScheduled = false

    /// Flushes at once (``HTTPStream/flushNow()``).
    fileprivate func flushNow() {
        self.context?.flush()
    }

    /// Flushes once at the end of this event-loop pass, however many writes it made: an upstream
    /// that delivers 32 events in one read becomes one `writev`, not 32 (HTTP/2 does the same in
    /// its connection handler). Nothing waits longer than the current pass.
    fileprivate func scheduleFlush() {
        guard !self.flushScheduled, let context = self.context else { return }
        self.flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = loopBound.value
            handler.flushScheduled = false
            handler.context?.flush()
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    fileprivate func streamFinished(_ stream: HTTP1Stream) {
        if self.current === stream { self.current = nil }
        // A stream closes when its end is written, and a pipelined request may be current by then.
        if self.quiescing, self.current == nil { self.context?.close(promise: nil) }
    }
}

/// One HTTP/1.1 request/response on a connection.
final class HTTP1Stream: HTTPStream {
    let context: ChannelHandlerContext
    var handler: HTTP1ServerStreamHandler?
    var delegate: (any HTTPStreamDelegate)?
    var receivedEnd = false
    var sentHead = false
    var sentEnd = false
    /// The response's end reached the socket (its write completed), not just NIO's queue.
    var endWritten = false
    private(set) var isClosed = false

    init(context: ChannelHandlerContext, handler: HTTP1ServerStreamHandler) {
        self.context = context
        self.handler = handler
    }

    var eventLoop: any EventLoop { self.context.eventLoop }
    var isWritable: Bool { self.context.channel.isWritable }
    var bufferedOutboundBytes: Int {
        ((try? self.context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0)
            + (self.held?.readableBytes ?? 0)
    }
    /// Body bytes passed while the connection is not writable, appended into one buffer and queued in NIO
    /// a part of ``heldPart`` at a time (the rest when it is writable again): each part queued costs a write
    /// record, a chunk head and an allocation of its own, and a slow reader's answer of token chunks was a
    /// part a token (helper-128). HTTP/2 streams hold theirs in one buffer the same way.
    private var held: ByteBuffer?
    static let heldPart = 64 * 1024

    func sendResponse(_ response: HTTPResponse, endStream: Bool) {
        guard !self.isClosed, !self.sentHead else { return }
        self.sentHead = true
        self.context.write(NIOAny(HTTPResponsePart.head(response)), promise: nil)
        if endStream { self.finish(trailers: nil) } else { self.handler?.scheduleFlush() }
    }

    func flushNow() {
        self.handler?.flushNow()
    }

    func sendData(_ data: ByteBuffer, endStream: Bool) {
        guard !self.isClosed, !self.sentEnd else { return }
        // A body part before the head would trip NIO's HTTP/1 encoder (a precondition, the whole
        // process): a responder bug, answered by closing this connection instead.
        guard self.sentHead else { return self.reset(.internalError) }
        if self.held != nil || !self.context.channel.isWritable {
            var data = data
            if self.held == nil {
                // A part's room at once, with slack for the append that passes it (no doubling to 128 KiB).
                self.held = self.context.channel.allocator.buffer(
                    capacity: max(data.readableBytes, Self.heldPart * 5 / 4))
            }
            self.held!.writeBuffer(&data)
            // Queued in parts of 64 KiB: one buffer grown to a megabyte by doubling holds up to twice its bytes.
            if self.held!.readableBytes >= Self.heldPart {
                self.context.write(NIOAny(HTTPResponsePart.body(self.held.take()!)), promise: nil)
            }
        } else {
            self.context.write(NIOAny(HTTPResponsePart.body(data)), promise: nil)
        }
        if endStream { self.finish(trailers: nil) } else { self.handler?.scheduleFlush() }
    }

    /// Whether bytes wait for the connection to be writable again.
    var holdsBytes: Bool { self.held != nil }

    /// Writes what was held while the connection was not writable, as one body part.
    func writeHeld() {
        guard let held = self.held.take(), held.readableBytes > 0, !self.isClosed else { return }
        self.context.write(NIOAny(HTTPResponsePart.body(held)), promise: nil)
        self.handler?.scheduleFlush()
    }

    func sendEnd(trailers: HTTPFields?) {
        guard !self.isClosed, !self.sentEnd else { return }
        guard self.sentHead else { return self.reset(.internalError) }
        self.finish(trailers: trailers)
    }

    /// The stream closes when its end is written, as an HTTP/2 stream closes when its last frame is sent,
    /// not when it is queued: until then the answer is still in this process's memory, and a delegate that
    /// counts what it holds for a slow reader counts it until the stream closes (helper-85, helper-90).
    /// A connection that closes first fails the write, and the stream closes with `connectionClosed`.
    private func finish(trailers: HTTPFields?) {
        self.sentEnd = true
        self.writeHeld()
        let written = self.context.eventLoop.makePromise(of: Void.self)
        let stream = NIOLoopBound(self, eventLoop: self.context.eventLoop)
        written.futureResult.whenComplete { result in
            switch result {
            case .success:
                stream.value.endWritten = true
                stream.value.closeIfComplete()
            case .failure:
                stream.value.markClosed(error: .connectionClosed)
            }
        }
        self.context.writeAndFlush(NIOAny(HTTPResponsePart.end(trailers)), promise: written)
    }

    func closeIfComplete() {
        if self.endWritten && self.receivedEnd { self.markClosed(error: nil) }
    }

    func reset(_ code: HTTP2ErrorCode) {
        guard !self.isClosed else { return }
        self.markClosed(error: HTTPStreamError(code: code, byPeer: false))
        self.context.close(promise: nil)
    }

    func consume(_ bytes: Int) {}

    func markClosed(error: HTTPStreamError?) {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.held = nil
        let delegate = self.delegate
        self.delegate = nil
        delegate?.streamDidClose(error: error)
        self.handler?.streamFinished(self)
        self.handler = nil
    }
}
