import NIOCore
import NIOHTTP1

/// Bounds what one HTTP/1.1 connection may cost before and between requests (issue #18 rows 4–5).
///
/// Responsibilities:
/// 1. a request head must be complete within ``HTTP2Configuration/http1HeaderTimeout`` of the
///    protocol being known, and a keep-alive connection must send its next head within
///    ``HTTP2Configuration/http1KeepAliveTimeout`` of the previous response's end — else the
///    connection is closed (slowloris: partial heads, idle keep-alive);
/// 2. writes respect writability: while the channel is not writable (the peer does not read its
///    responses), the next request is held and nothing more is read, so pipelined requests cannot
///    queue responses without bound — at most the channel's high watermark plus one response.
///
/// Sits after NIO's `HTTPServerPipelineHandler`, which hands over one request at a time.
final class HTTP1ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let headerTimeout: TimeAmount
    private let keepAliveTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Parts of a request that arrived while the channel was not writable.
    private var held: [NIOAny] = []
    private var holding = false
    private var readPending = false

    init(configuration: HTTP2Configuration) {
        self.headerTimeout = configuration.http1HeaderTimeout
        self.keepAliveTimeout = configuration.http1KeepAliveTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.arm(context: context, self.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        self.held.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.holding {
            self.held.append(data)
            return
        }
        if case .head = self.unwrapInboundIn(data) {
            self.timer?.cancel()
            self.timer = nil
            if !context.channel.isWritable {
                self.holding = true
                self.held.append(data)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd: Bool
        if case .end = self.unwrapOutboundIn(data) { isEnd = true } else { isEnd = false }
        context.write(data, promise: promise)
        if isEnd { self.arm(context: context, self.keepAliveTimeout) }
    }

    func read(context: ChannelHandlerContext) {
        if self.holding || !context.channel.isWritable {
            self.readPending = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        guard context.channel.isWritable else { return }
        if self.holding {
            self.holding = false
            let held = self.held
            self.held.removeAll()
            for part in held { context.fireChannelRead(part) }
            context.fireChannelReadComplete()
        }
        if self.readPending && !self.holding {
            self.readPending = false
            context.read()
        }
    }

    private func arm(context: ChannelHandlerContext, _ timeout: TimeAmount) {
        self.timer?.cancel()
        guard context.channel.isActive else { return }
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
}
