/// The lifecycle of one HTTP/2 connection, without I/O: idle time, graceful shutdown and close.
///
/// Responsibilities (mirroring swift-nio-http2's `NIOHTTP2ServerConnectionManagementHandler`):
/// 1. start the idle timer when the last stream closes and cancel it when one opens;
/// 2. shut down gracefully in two steps as a server (RFC 9113 §6.8): a GOAWAY announcing the end
///    with the maximum stream id, a PING to measure one round trip, then the final GOAWAY with the
///    last stream id we processed; as a client a single GOAWAY is enough (the peer cannot push);
/// 3. close once the streams in flight have finished, or when the grace timer fires.
///
/// Each transition returns the action for the handler to perform.
struct HTTP2ConnectionStateMachine {
    enum State: Equatable {
        case active(openStreams: Int)
        /// A graceful shutdown is under way; `finalGoAwaySent` once no new stream can start.
        case quiescing(openStreams: Int, finalGoAwaySent: Bool)
        case closed
    }

    enum Action: Equatable {
        case none
        case startIdleTimer
        case cancelIdleTimer
        /// Server, step one: GOAWAY(2^31-1) and a PING; also start the grace timer.
        case sendShutdownNotice
        /// The final GOAWAY; close afterwards when `thenClose`.
        case sendFinalGoAway(thenClose: Bool)
        case close
    }

    private(set) var state: State = .active(openStreams: 0)
    let isServer: Bool

    init(isServer: Bool) { self.isServer = isServer }

    mutating func streamOpened() -> Action {
        switch self.state {
        case .active(let n):
            self.state = .active(openStreams: n + 1)
            return n == 0 ? .cancelIdleTimer : .none
        case .quiescing(let n, let sent):
            self.state = .quiescing(openStreams: n + 1, finalGoAwaySent: sent)
            return .none
        case .closed:
            return .none
        }
    }

    mutating func streamClosed() -> Action {
        switch self.state {
        case .active(let n):
            let remaining = max(0, n - 1)
            self.state = .active(openStreams: remaining)
            return remaining == 0 ? .startIdleTimer : .none
        case .quiescing(let n, let sent):
            let remaining = max(0, n - 1)
            if remaining == 0 && sent {
                self.state = .closed
                return .close
            }
            self.state = .quiescing(openStreams: remaining, finalGoAwaySent: sent)
            return .none
        case .closed:
            return .none
        }
    }

    mutating func beginGracefulShutdown() -> Action {
        guard case .active(let n) = self.state else { return .none }
        if self.isServer {
            self.state = .quiescing(openStreams: n, finalGoAwaySent: false)
            return .sendShutdownNotice
        }
        if n == 0 {
            self.state = .closed
            return .sendFinalGoAway(thenClose: true)
        }
        self.state = .quiescing(openStreams: n, finalGoAwaySent: true)
        return .sendFinalGoAway(thenClose: false)
    }

    /// The PING sent with the shutdown notice came back: one RTT has passed.
    mutating func shutdownNoticeAcknowledged() -> Action {
        guard case .quiescing(let n, false) = self.state else { return .none }
        if n == 0 {
            self.state = .closed
            return .sendFinalGoAway(thenClose: true)
        }
        self.state = .quiescing(openStreams: n, finalGoAwaySent: true)
        return .sendFinalGoAway(thenClose: false)
    }

    mutating func idleTimerFired() -> Action {
        guard case .active(0) = self.state else { return .none }
        self.state = .closed
        return .sendFinalGoAway(thenClose: true)
    }

    mutating func graceTimerFired() -> Action {
        if case .closed = self.state { return .none }
        self.state = .closed
        return .close
    }

    mutating func connectionClosed() {
        self.state = .closed
    }
}
