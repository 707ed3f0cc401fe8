internal import CNGHTTP2
import HTTPTypes
import NIOCore

/// Timers and PINGs: performing what ``HTTP2ConnectionStateMachine`` answers.
extension HTTP2ConnectionHandler {
    /// The scheduled task behind each ``HTTP2ConnectionStateMachine/Timer``, at most one each.
    struct Timers {
        private var handshake: Scheduled<Void>?
        private var idle: Scheduled<Void>?
        private var grace: Scheduled<Void>?
        private var keepalive: Scheduled<Void>?
        private var keepaliveTimeout: Scheduled<Void>?
        private var stallCheck: Scheduled<Void>?
        /// When the idle timer is due; nil while it is cancelled. Its task is not cancelled and
        /// scheduled again for every stream (two scheduled-task operations, ~6 k instructions a
        /// request on a connection taking one stream at a time; issue #19): it stays scheduled,
        /// and when it fires early it is scheduled again for the deadline, or does nothing.
        var idleDeadline: NIODeadline?
        /// When the idle timer's pending task runs.
        var idleTaskDeadline: NIODeadline?

        subscript(_ timer: StateMachine.Timer) -> Scheduled<Void>? {
            get {
                switch timer {
                case .handshake: self.handshake
                case .idle: self.idle
                case .grace: self.grace
                case .keepalive: self.keepalive
                case .keepaliveTimeout: self.keepaliveTimeout
                case .stallCheck: self.stallCheck
                }
            }
            set {
                switch timer {
                case .handshake: self.handshake = newValue
                case .idle: self.idle = newValue
                case .grace: self.grace = newValue
                case .keepalive: self.keepalive = newValue
                case .keepaliveTimeout: self.keepaliveTimeout = newValue
                case .stallCheck: self.stallCheck = newValue
                }
            }
        }

        mutating func cancelAll() {
            self.handshake?.cancel()
            self.idle?.cancel()
            self.grace?.cancel()
            self.keepalive?.cancel()
            self.keepaliveTimeout?.cancel()
            self.stallCheck?.cancel()
            self = Timers()
        }
    }

    /// Performs one action of the state machine.
    ///
    /// Most stream events answer ``StateMachine/Action/none``, so that test stays at the call site.
    @inline(__always)
    func apply(_ action: StateMachine.Action) {
        if case .none = action { return }
        self.perform(action)
    }

    private func perform(_ action: StateMachine.Action) {
        guard let session = self.session else { return }
        switch action {
        case .none:
            return
        case .startTimers(let handshake, let idle, let keepalive, let stallCheck):
            self.startTimer(.handshake, in: handshake)
            if let keepalive { self.startTimer(.keepalive, in: keepalive) }
            if let stallCheck { self.startTimer(.stallCheck, in: stallCheck) }
            if let idle { self.startTimer(.idle, in: idle) }
        case .startTimer(let timer, let delay):
            self.startTimer(timer, in: delay)
        case .cancelTimer(.idle):
            self.timers.idleDeadline = nil  // its task, if any, finds nothing to do (see Timers.idleDeadline)
        case .cancelTimer(let timer):
            self.timers[timer]?.cancel()
            self.timers[timer] = nil
        case .sendPing(let ping):
            self.send(ping, on: session)
        case .sendKeepalivePing(let ping, let timeout, let next):
            self.send(ping, on: session)
            if let timeout { self.startTimer(.keepaliveTimeout, in: timeout) }
            self.startTimer(.keepalive, in: next)
        case .completePing(let id, let rtt):
            self.takePingWaiter(id)?.succeed(rtt)
        case .resetStalledStreams(let now, let next):
            for stream in self.streams.all
            where self.stateMachine.isStalled(
                bufferedOutboundBytes: stream.bufferedOutboundBytes, lastProgress: stream.lastProgress, at: now)
            {
                stream.reset(.cancel)
            }
            self.startTimer(.stallCheck, in: next)
        case .sendShutdownNotice(let ping, let grace):
            nghttp2_submit_shutdown_notice(session)
            self.send(ping, on: session)
            self.startTimer(.grace, in: grace)
        case .sendFinalGoAway(let thenClose, let grace):
            let last = self.isServer ? nghttp2_session_get_last_proc_stream_id(session) : 0
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, HTTP2ErrorCode.noError.rawValue, nil, 0)
            if let grace { self.startTimer(.grace, in: grace) }
            self.flush()
            if thenClose { self.closeNow() }
        case .terminate(let code, let thenClose):
            self.terminate(code)
            if thenClose { self.closeNow() }
        case .close:
            self.flush()
            self.closeNow()
        }
    }

    private func startTimer(_ timer: StateMachine.Timer, in delay: TimeAmount) {
        guard let context = self.context else { return }
        if timer == .idle { return self.startIdleTimer(at: context.eventLoop.now + delay, on: context.eventLoop) }
        self.timers[timer]?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timers[timer] = context.eventLoop.scheduleTask(in: delay) {
            loopBound.value.timerFired(timer)
        }
    }

    /// The idle timer, due at `deadline`: its task is scheduled only when none is pending.
    private func startIdleTimer(at deadline: NIODeadline, on eventLoop: any EventLoop) {
        self.timers.idleDeadline = deadline
        if let pending = self.timers[.idle] {
            guard let runs = self.timers.idleTaskDeadline, runs > deadline else { return }
            pending.cancel()  // due sooner than its task runs (a shorter timeout): scheduled anew
        }
        self.scheduleIdleTask(at: deadline, on: eventLoop)
    }

    private func scheduleIdleTask(at deadline: NIODeadline, on eventLoop: any EventLoop) {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        self.timers[.idle] = eventLoop.scheduleTask(deadline: deadline) { loopBound.value.idleTaskFired() }
        self.timers.idleTaskDeadline = deadline
    }

    /// The idle timer's task ran: the timer fires if it is still due by now; if it was started again
    /// since, its task waits for the new deadline; if it was cancelled, nothing happens.
    private func idleTaskFired() {
        self.timers[.idle] = nil
        guard let deadline = self.timers.idleDeadline, !self.closed else { return }
        let eventLoop = self.eventLoop
        if deadline > eventLoop.now { return self.scheduleIdleTask(at: deadline, on: eventLoop) }
        self.timers.idleDeadline = nil
        self.timerFired(.idle)
    }

    private func timerFired(_ timer: StateMachine.Timer) {
        self.timers[timer] = nil
        guard !self.closed else { return }
        self.apply(self.stateMachine.timerFired(timer, at: self.eventLoop.now))
    }

    /// Submits a PING with the machine's id as its opaque data; fails the waiter of the caller's
    /// PING the table gave up on to make room.
    private func send(_ ping: StateMachine.PingToSend, on session: OpaquePointer) {
        if !self.closed {
            var opaque = ping.id.bigEndian
            withUnsafeBytes(of: &opaque) { bytes in
                _ = nghttp2_submit_ping(
                    session, UInt8(NGHTTP2_FLAG_NONE.rawValue), bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
            }
        }
        if let evicted = ping.evicted {
            self.takePingWaiter(evicted)?.fail(HTTP2ConnectionError(code: .pingTimeout, message: "PING unanswered"))
        }
        self.scheduleFlush()
    }

    private func takePingWaiter(_ id: UInt64) -> EventLoopPromise<TimeAmount>? {
        guard let index = self.pingWaiters.firstIndex(where: { $0.id == id }) else { return nil }
        return self.pingWaiters.remove(at: index).promise
    }
}
