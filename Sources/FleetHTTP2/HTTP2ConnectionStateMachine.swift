import HTTPTypes
import NIOCore

/// Connection management of one HTTP/2 connection, without I/O: when it is alive, idle, stuck or done.
///
/// Events come in as `received…(at:)`, `timerFired(_:at:)` and stream counts, with the clock
/// injected; each returns the one ``Action`` for the handler to perform.
///
/// Responsibilities (the shape of swift-nio-http2's `NIOHTTP2ServerConnectionManagementHandler` and
/// grpc-swift-nio-transport's `ServerConnectionManagementHandler.StateMachine`):
/// 1. the handshake: the peer must acknowledge our SETTINGS within
///    ``HTTP2Configuration/handshakeTimeout``, else SETTINGS_TIMEOUT (RFC 9113 §6.5.3);
/// 2. the PING table (RFC 9113 §6.7): ids, round trips, at most 16 outstanding;
/// 3. keepalive: a PING every ``HTTP2Configuration/keepaliveInterval``; any keepalive PING left
///    unanswered for ``HTTP2Configuration/keepaliveTimeout`` closes the connection;
/// 4. stall detection: every quarter of ``HTTP2Configuration/stallTimeout`` the handler resets the
///    streams whose queued output made no progress for that long (a peer holding its window at zero);
/// 5. idle time: start the idle timer when the last stream closes and cancel it when one opens;
/// 6. graceful shutdown in two steps as a server (RFC 9113 §6.8): a GOAWAY announcing the end with
///    the maximum stream id, a PING to measure one round trip, then the final GOAWAY with the last
///    stream id we processed; as a client a single GOAWAY is enough (the peer cannot push);
/// 7. close once the streams in flight have finished, or when the grace timer fires.
struct HTTP2ConnectionStateMachine {
    /// Where the connection is in its life.
    enum State: Equatable, Sendable {
        case active(openStreams: Int)
        /// A graceful shutdown is under way; `finalGoAwaySent` once no new stream can start.
        case quiescing(openStreams: Int, finalGoAwaySent: Bool)
        case closed
    }

    /// The timers the handler runs for the machine; each one's firing is ``timerFired(_:at:)``.
    enum Timer: CaseIterable, Sendable {
        case handshake
        case idle
        case grace
        case keepalive
        case keepaliveTimeout
        case stallCheck
    }

    /// A PING for the handler to send: its opaque id, and the id of an older caller's PING the
    /// table gave up on to make room (fail its waiter as unanswered).
    struct PingToSend: Equatable, Sendable {
        let id: UInt64
        let evicted: UInt64?
    }

    /// What the handler does after an event.
    enum Action: Equatable, Sendable {
        case none
        /// The connection became active: start these timers (`nil`: that one is off).
        case startTimers(handshake: TimeAmount, idle: TimeAmount?, keepalive: TimeAmount?, stallCheck: TimeAmount?)
        /// Start (or restart) one timer.
        case startTimer(Timer, in: TimeAmount)
        case cancelTimer(Timer)
        /// Send the PING a caller asked for (its waiter is known by the id).
        case sendPing(PingToSend)
        /// Send a keepalive PING, start the keepalive timeout when `timeout` is set, and fire the
        /// keepalive timer again after `next`.
        case sendKeepalivePing(PingToSend, timeout: TimeAmount?, next: TimeAmount)
        /// The caller's PING `id` came back after `rtt`.
        case completePing(id: UInt64, rtt: TimeAmount)
        /// Reset every stream with queued output and no progress for the stall timeout (ask
        /// ``isStalled(bufferedOutboundBytes:lastProgress:at:)``), then check again after `next`.
        case resetStalledStreams(at: NIODeadline, next: TimeAmount)
        /// Server, step one: GOAWAY(2^31-1), then the PING, and start the grace timer.
        case sendShutdownNotice(PingToSend, grace: TimeAmount)
        /// The final GOAWAY; start the grace timer when `grace` is set; close afterwards when `thenClose`.
        case sendFinalGoAway(thenClose: Bool, grace: TimeAmount?)
        /// GOAWAY with `code` at once (a broken contract, not a graceful end); close afterwards when `thenClose`.
        case terminate(HTTP2ErrorCode, thenClose: Bool)
        case close
    }

    private(set) var state: State = .active(openStreams: 0)
    /// Whether the peer has acknowledged our SETTINGS.
    private(set) var handshakeComplete = false
    /// The last measured PING round trip.
    private(set) var lastRTT: TimeAmount?
    private var pings = HTTP2PingTable(capacity: 16)
    private var graceTimerStarted = false

    let isServer: Bool
    private let handshakeTimeout: TimeAmount
    private let idleTimeout: TimeAmount?
    private let gracefulShutdownTimeout: TimeAmount
    private let keepaliveInterval: TimeAmount?
    private let keepaliveTimeout: TimeAmount
    private let stallTimeout: TimeAmount?

    /// Creates the machine for one connection.
    /// - Parameters:
    ///   - isServer: the HTTP/2 role (a server shuts down in two steps).
    ///   - configuration: the timeouts and intervals.
    init(isServer: Bool, configuration: HTTP2Configuration = .defaults) {
        self.isServer = isServer
        self.handshakeTimeout = configuration.handshakeTimeout
        self.idleTimeout = configuration.idleTimeout
        self.gracefulShutdownTimeout = configuration.gracefulShutdownTimeout
        self.keepaliveInterval = configuration.keepaliveInterval
        self.keepaliveTimeout = configuration.keepaliveTimeout
        self.stallTimeout = configuration.stallTimeout
    }

    /// PINGs sent and not yet answered, oldest first.
    var outstandingPings: [HTTP2PingTable.Entry] { self.pings.outstanding }

    // MARK: Connection

    /// The connection became active: the handshake, keepalive, stall and idle clocks start.
    mutating func connectionActivated() -> Action {
        .startTimers(
            handshake: self.handshakeTimeout,
            idle: self.idleTimeout,
            keepalive: self.keepaliveInterval,
            stallCheck: self.stallTimeout.map { max(.nanoseconds($0.nanoseconds / 4), .milliseconds(10)) }
        )
    }

    /// The connection closed: no PING will be answered.
    mutating func connectionClosed() {
        self.state = .closed
        self.pings.removeAll()
    }

    /// The peer acknowledged our SETTINGS: the handshake is complete.
    mutating func receivedSettingsAck() -> Action {
        guard !self.handshakeComplete else { return .none }
        self.handshakeComplete = true
        return .cancelTimer(.handshake)
    }

    // MARK: Streams

    @inline(__always)
    mutating func streamOpened() -> Action {
        switch self.state {
        case .active(let n):
            self.state = .active(openStreams: n + 1)
            return n == 0 && self.idleTimeout != nil ? .cancelTimer(.idle) : .none
        case .quiescing(let n, let sent):
            self.state = .quiescing(openStreams: n + 1, finalGoAwaySent: sent)
            return .none
        case .closed:
            return .none
        }
    }

    @inline(__always)
    mutating func streamClosed() -> Action {
        switch self.state {
        case .active(let n):
            let remaining = max(0, n - 1)
            self.state = .active(openStreams: remaining)
            guard remaining == 0, let idle = self.idleTimeout else { return .none }
            return .startTimer(.idle, in: idle)
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

    /// Whether a stream with `bufferedOutboundBytes` queued, whose output last moved at
    /// `lastProgress`, has stalled by `now`.
    func isStalled(bufferedOutboundBytes: Int, lastProgress: NIODeadline, at now: NIODeadline) -> Bool {
        guard let stall = self.stallTimeout else { return false }
        return bufferedOutboundBytes > 0 && now - lastProgress > stall
    }

    // MARK: PING

    /// A caller asked for a PING at `now`; ``Action/completePing(id:rtt:)`` answers it.
    mutating func pingRequested(at now: NIODeadline) -> Action {
        .sendPing(self.addPing(.caller, at: now))
    }

    /// A PING ACK carrying `opaque` arrived at `now`.
    mutating func receivedPingAck(opaque: UInt64, at now: NIODeadline) -> Action {
        guard let ping = self.pings.remove(acknowledging: opaque) else { return .none }
        let rtt = now - ping.sent
        self.lastRTT = rtt
        switch ping.purpose {
        case .caller:
            return .completePing(id: ping.id, rtt: rtt)
        case .keepalive:
            guard let oldest = self.pings.oldestKeepalive else { return .cancelTimer(.keepaliveTimeout) }
            return .startTimer(.keepaliveTimeout, in: oldest + self.keepaliveTimeout - now)
        case .shutdownNotice:
            return self.shutdownNoticeAcknowledged()
        }
    }

    private mutating func addPing(_ purpose: HTTP2PingTable.Purpose, at now: NIODeadline) -> PingToSend {
        let (id, evicted) = self.pings.add(purpose, at: now)
        guard let evicted, evicted.purpose == .caller else { return PingToSend(id: id, evicted: nil) }
        return PingToSend(id: id, evicted: evicted.id)
    }

    // MARK: Graceful shutdown

    mutating func beginGracefulShutdown(at now: NIODeadline) -> Action {
        guard case .active(let n) = self.state else { return .none }
        if self.isServer {
            self.state = .quiescing(openStreams: n, finalGoAwaySent: false)
            self.graceTimerStarted = true
            return .sendShutdownNotice(self.addPing(.shutdownNotice, at: now), grace: self.gracefulShutdownTimeout)
        }
        if n == 0 {
            self.state = .closed
            return .sendFinalGoAway(thenClose: true, grace: nil)
        }
        self.state = .quiescing(openStreams: n, finalGoAwaySent: true)
        return .sendFinalGoAway(thenClose: false, grace: self.startGraceTimer())
    }

    /// The PING sent with the shutdown notice came back: one RTT has passed.
    private mutating func shutdownNoticeAcknowledged() -> Action {
        guard case .quiescing(let n, false) = self.state else { return .none }
        if n == 0 {
            self.state = .closed
            return .sendFinalGoAway(thenClose: true, grace: nil)
        }
        self.state = .quiescing(openStreams: n, finalGoAwaySent: true)
        return .sendFinalGoAway(thenClose: false, grace: self.startGraceTimer())
    }

    private mutating func startGraceTimer() -> TimeAmount? {
        guard !self.graceTimerStarted else { return nil }
        self.graceTimerStarted = true
        return self.gracefulShutdownTimeout
    }

    // MARK: Timers

    /// `timer` fired at `now`.
    mutating func timerFired(_ timer: Timer, at now: NIODeadline) -> Action {
        switch timer {
        case .handshake:
            return self.handshakeComplete ? .none : .terminate(.settingsTimeout, thenClose: false)
        case .idle:
            guard case .active(0) = self.state else { return .none }
            self.state = .closed
            return .sendFinalGoAway(thenClose: true, grace: nil)
        case .grace:
            if case .closed = self.state { return .none }
            self.state = .closed
            return .close
        case .keepalive:
            guard let interval = self.keepaliveInterval else { return .none }
            let armTimeout = self.pings.oldestKeepalive == nil
            let ping = self.addPing(.keepalive, at: now)
            return .sendKeepalivePing(ping, timeout: armTimeout ? self.keepaliveTimeout : nil, next: interval)
        case .keepaliveTimeout:
            guard let oldest = self.pings.oldestKeepalive else { return .none }
            let deadline = oldest + self.keepaliveTimeout
            if deadline <= now { return .terminate(.noError, thenClose: true) }
            return .startTimer(.keepaliveTimeout, in: deadline - now)
        case .stallCheck:
            guard let stall = self.stallTimeout else { return .none }
            return .resetStalledStreams(at: now, next: max(.nanoseconds(stall.nanoseconds / 4), .milliseconds(10)))
        }
    }
}
