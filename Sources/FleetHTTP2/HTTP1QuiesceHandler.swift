import NIOCore

/// Holds a drain's `ChannelShouldQuiesceEvent` back from NIO's HTTP/1.1 pipelining helper until the
/// connection's queued bytes are written.
///
/// That helper closes a connection between requests at once, which drops what is still queued: an
/// answer the gateway holds for a slow reader, whose end is queued and whose stream is therefore done
/// (helper-93: a drain cut a held 15,000-token answer at 13,892 tokens, with no last chunk). Sitting in
/// front of the helper, this handler passes the event on once nothing is queued; a connection that
/// closes first needs it no more. A reader that stops is still closed by its stall timer
/// (``HTTP1ConnectionGuard``); one that goes on reading slowly keeps the drain waiting until it has read
/// all, as a streaming HTTP/1.1 answer did before (the drain's grace closes HTTP/2 connections, not
/// these; helper-94). Only a drain pays for it: it looks at the queue every ``pollInterval`` while a
/// quiesce waits, and at nothing otherwise.
final class HTTP1QuiesceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// How often a waiting quiesce looks at the connection's queue.
    static let pollInterval: TimeAmount = .milliseconds(20)

    private var waiting: RepeatedTask?

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent, Self.queuedBytes(context) > 0 else {
            return context.fireUserInboundEventTriggered(event)
        }
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
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopWaiting()
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
