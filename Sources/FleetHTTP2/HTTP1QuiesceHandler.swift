import NIOCore

/// Holds a drain's `ChannelShouldQuiesceEvent` back from NIO's HTTP/1.1 pipelining helper until the
/// connection's queued bytes are written, and closes the connection when the drain's grace is over.
///
/// That helper closes a connection between requests at once, which drops what is still queued: an
/// answer the gateway holds for a slow reader, whose end is queued and whose stream is therefore done
/// (helper-93: a drain cut a held 15,000-token answer at 13,892 tokens, with no last chunk). Sitting in
/// front of the helper, this handler passes the event on once nothing is queued; a connection that
/// closes first needs it no more. It looks at the queue every ``pollInterval`` while a quiesce waits,
/// and at nothing otherwise.
///
/// The grace (``HTTP2Configuration/gracefulShutdownTimeout``, 30 s) bounds an HTTP/1.1 connection's drain
/// as it bounds an HTTP/2 one's after GOAWAY: past it the connection closes, whatever it was doing. Before,
/// only the stall timer ended a reader that stopped (60 s), and a reader that went on slowly kept the
/// drain, and the process, waiting until it had read all (helper-94).
final class HTTP1QuiesceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// How often a waiting quiesce looks at the connection's queue.
    static let pollInterval: TimeAmount = .milliseconds(20)

    private let grace: TimeAmount
    private var waiting: RepeatedTask?
    private var deadline: Scheduled<Void>?

    /// `grace`: how long a drained connection may go on (zero or less: no limit).
    init(grace: TimeAmount) {
        self.grace = grace
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        if self.deadline == nil, self.grace > .zero {
            let channel = context.channel
            self.deadline = context.eventLoop.scheduleTask(in: self.grace) { channel.close(promise: nil) }
        }
        guard Self.queuedBytes(context) > 0 else { return context.fireUserInboundEventTriggered(event) }
        guard self.waiting == nil else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let every = Self.pollInterval
        self.waiting = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            let (handler, context) = bound.value
            guard Self.queuedBytes(context) == 0 else { return }
            handler.stopWaiting()
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.stopWaiting()  // closed: the drain has what it waited for
        self.deadline?.cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopWaiting()
        self.deadline?.cancel()
    }

    private func stopWaiting() {
        self.waiting?.cancel()
        self.waiting = nil
    }

    /// Bytes written to the channel and not yet to its socket.
    private static func queuedBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }
}
