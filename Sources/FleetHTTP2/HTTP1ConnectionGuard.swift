import NIOCore
import NIOHTTP1

/// Bounds what one HTTP/1.1 connection may cost before and between requests (issue #18 rows 4–5).
///
/// Responsibilities:
/// 1. a request head must be complete within ``HTTP2Configuration/http1HeaderTimeout`` of the
///    protocol being known, and a keep-alive connection must send its next head within
///    ``HTTP2Configuration/http1KeepAliveTimeout`` of the previous response's end being written — else the
///    connection is closed (slowloris: partial heads, idle keep-alive);
/// 2. writes respect writability: while the channel is not writable (the peer does not read its
///    responses), the next request is held and nothing more is read, so pipelined requests cannot
///    queue responses without bound — at most the channel's high watermark plus one response;
/// 3. a peer that stops reading must read again within ``HTTP2Configuration/stallTimeout`` (the
///    channel writable again), else the connection is closed and its request ends — as HTTP/2
///    resets a stalled stream. Without it a client that never read held a car's slot, which went
///    on generating, for as long as it kept the socket open (helper-65).
///
/// Sits after NIO's `HTTPServerPipelineHandler`, which hands over one request at a time. The
/// decisions are ``HTTP1ConnectionState``'s; this handler performs them.
final class HTTP1ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let headerTimeout: TimeAmount
    private let keepAliveTimeout: TimeAmount
    private let stallTimeout: TimeAmount?
    private var state = HTTP1ConnectionState()
    private var timer: Scheduled<Void>?
    /// Parts of a request that arrived while the channel was not writable.
    private var held: [NIOAny] = []

    init(configuration: HTTP2Configuration) {
        self.headerTimeout = configuration.http1HeaderTimeout
        self.keepAliveTimeout = configuration.http1KeepAliveTimeout
        self.stallTimeout = configuration.stallTimeout.flatMap { $0 > .zero ? $0 : nil }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.arm(context: context, self.state.started())
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.state.closed()
        self.timer?.cancel()
        self.timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state.closed()
        self.timer?.cancel()
        self.timer = nil
        self.held.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action: HTTP1ConnectionState.Inbound
        if case .head = self.unwrapInboundIn(data) {
            self.timer?.cancel()
            self.timer = nil
            action = self.state.headReceived(writable: context.channel.isWritable)
            if self.state.timer == .stall { self.arm(context: context, .stall) }
        } else {
            action = self.state.partReceived()
        }
        switch action {
        case .forward: context.fireChannelRead(data)
        case .hold: self.held.append(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = self.unwrapOutboundIn(data) else { return context.write(data, promise: promise) }
        // Before the write: writing the end can hand over the next pipelined request at once (NIO's
        // pipelining helper), whose head then owns the timers.
        self.state.responseEnded()
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        written.futureResult.whenSuccess {
            let (handler, context) = bound.value
            if let timer = handler.state.responseFlushed() { handler.arm(context: context, timer) }
        }
        context.write(data, promise: written)
    }

    func read(context: ChannelHandlerContext) {
        if self.state.readRequested(writable: context.channel.isWritable) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        guard context.channel.isWritable else {
            if self.state.becameUnwritable() { self.arm(context: context, .stall) }
            return
        }
        let (release, read, stallEnded) = self.state.becameWritable()
        if stallEnded {
            self.timer?.cancel()
            self.timer = nil
        }
        if release {
            let held = self.held
            self.held.removeAll()
            for part in held { context.fireChannelRead(part) }
            context.fireChannelReadComplete()
        }
        if read { context.read() }
    }

    private func arm(context: ChannelHandlerContext, _ which: HTTP1ConnectionState.Timer) {
        self.timer?.cancel()
        guard context.channel.isActive else { return }
        let timeout: TimeAmount
        switch which {
        case .header: timeout = self.headerTimeout
        case .keepAlive: timeout = self.keepAliveTimeout
        case .stall:
            guard let stall = self.stallTimeout else { return }  // 0: never
            timeout = stall
        case .none: return
        }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: timeout) {
            if handler.value.state.timerFired(which) { channel.close(promise: nil) }
        }
    }
}
