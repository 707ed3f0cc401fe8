import FleetProtocol
package import NIOCore

/// Emulates a car's network link on its tunnel: installed nearest the socket (below TLS and
/// HTTP/2), it holds every write and every read for the link's one-way delay ± jitter and
/// serialises the bytes at the link's bandwidth, all on the channel's event loop with one
/// scheduled task per direction at a time (no thread sleeps: thousands of cars share a loop).
///
/// Responsibilities:
/// 1. outbound (car → gateway, the uplink): a write leaves when the link has serialised it
///    (bytes × 8 ÷ uplink after the previous write finished) plus a one-way delay; order is kept,
///    as TCP keeps it, so a write never overtakes an earlier one whatever its jitter;
/// 2. inbound (gateway → car, the downlink): the same with the downlink's bandwidth;
/// 3. a close waits for the writes already on the link (a GOAWAY before the close still arrives);
///    reads already on the link are delivered before the channel goes inactive.
package final class LinkEmulator: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// One direction of the link: what is on it and when each piece arrives.
    struct Direction {
        /// Nanoseconds per byte at this direction's bandwidth.
        let nanosPerByte: Double
        var pending = CircularBuffer<(due: NIODeadline, data: ByteBuffer, promise: EventLoopPromise<Void>?)>()
        /// When the link finishes serialising the last byte accepted.
        var busyUntil = NIODeadline.uptimeNanoseconds(0)
        /// The arrival time of the last piece (arrivals never go backwards).
        var lastDue = NIODeadline.uptimeNanoseconds(0)
        var timer: Scheduled<Void>?

        init(mbps: Double) { self.nanosPerByte = 8_000 / max(0.001, mbps) }

        /// Accepts `bytes` now; returns when they arrive at the other end.
        mutating func admit(bytes: Int, now: NIODeadline, delay: TimeAmount) -> NIODeadline {
            let start = max(now, self.busyUntil)
            self.busyUntil = start + .nanoseconds(Int64(Double(bytes) * self.nanosPerByte))
            self.lastDue = max(self.lastDue, self.busyUntil + delay)
            return self.lastDue
        }
    }

    let profile: LinkProfile
    private var rng: SplitMix64
    private var up: Direction
    private var down: Direction
    private var closeRequested: (mode: CloseMode, promise: EventLoopPromise<Void>?)?

    /// - Parameter seed: the jitter's random stream (per car, so a run is repeatable in its draws).
    package init(profile: LinkProfile, seed: UInt64) {
        self.profile = profile
        self.rng = SplitMix64(seed: seed)
        self.up = Direction(mbps: profile.uplinkMbps)
        self.down = Direction(mbps: profile.downlinkMbps)
    }

    /// A one-way delay: RTT ÷ 2 ± jitter, uniform, at least zero.
    func oneWayDelay() -> TimeAmount {
        let u = Double(self.rng.next() >> 11) / Double(1 << 53)
        let ms = self.profile.rttMilliseconds / 2 + self.profile.jitterMilliseconds * (2 * u - 1)
        return .nanoseconds(Int64(max(0, ms) * 1e6))
    }

    // MARK: uplink

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        let due = self.up.admit(bytes: buffer.readableBytes, now: context.eventLoop.now, delay: self.oneWayDelay())
        self.up.pending.append((due, buffer, promise))
        if self.up.timer == nil { self.scheduleUp(context: context) }
    }

    /// Writes are flushed when they arrive, not when asked.
    package func flush(context: ChannelHandlerContext) {}

    package func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, !self.up.pending.isEmpty else {
            return context.close(mode: mode, promise: promise)
        }
        self.closeRequested = (mode, promise)
    }

    private func scheduleUp(context: ChannelHandlerContext) {
        guard let head = self.up.pending.first else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.up.timer = context.eventLoop.scheduleTask(deadline: head.due) {
            let (handler, context) = loopBound.value
            handler.up.timer = nil
            handler.releaseUp(context: context)
        }
    }

    private func releaseUp(context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        var wrote = false
        while let head = self.up.pending.first, head.due <= now {
            self.up.pending.removeFirst()
            context.write(self.wrapOutboundOut(head.data), promise: head.promise)
            wrote = true
        }
        if wrote { context.flush() }
        if self.up.pending.isEmpty, let close = self.closeRequested {
            self.closeRequested = nil
            context.close(mode: close.mode, promise: close.promise)
        } else {
            self.scheduleUp(context: context)
        }
    }

    // MARK: downlink

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        let due = self.down.admit(bytes: buffer.readableBytes, now: context.eventLoop.now, delay: self.oneWayDelay())
        self.down.pending.append((due, buffer, nil))
        if self.down.timer == nil { self.scheduleDown(context: context) }
    }

    /// Reads complete when they arrive.
    package func channelReadComplete(context: ChannelHandlerContext) {}

    private func scheduleDown(context: ChannelHandlerContext) {
        guard let head = self.down.pending.first else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.down.timer = context.eventLoop.scheduleTask(deadline: head.due) {
            let (handler, context) = loopBound.value
            handler.down.timer = nil
            handler.releaseDown(context: context, upTo: context.eventLoop.now)
        }
    }

    private func releaseDown(context: ChannelHandlerContext, upTo now: NIODeadline) {
        var read = false
        while let head = self.down.pending.first, head.due <= now {
            self.down.pending.removeFirst()
            context.fireChannelRead(self.wrapInboundOut(head.data))
            read = true
        }
        if read { context.fireChannelReadComplete() }
        self.scheduleDown(context: context)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        // What was already on the link arrives before the end of the connection.
        self.down.timer?.cancel()
        self.down.timer = nil
        self.releaseDown(context: context, upTo: .distantFuture)
        self.down.timer?.cancel()
        self.down.timer = nil
        self.failPendingWrites()
        context.fireChannelInactive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.up.timer?.cancel()
        self.down.timer?.cancel()
        self.failPendingWrites()
    }

    private func failPendingWrites() {
        self.up.timer?.cancel()
        self.up.timer = nil
        while let head = self.up.pending.popFirst() { head.promise?.fail(ChannelError.ioOnClosedChannel) }
        if let close = self.closeRequested {
            self.closeRequested = nil
            close.promise?.succeed()
        }
    }
}
