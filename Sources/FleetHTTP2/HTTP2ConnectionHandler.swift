internal import CNGHTTP2
public import HTTPTypes
public import NIOCore

/// Connection-level events of an HTTP/2 connection, delivered on its event loop.
public protocol HTTP2ConnectionDelegate: AnyObject {
    /// The peer sent GOAWAY: no stream above `lastStreamID` will be processed, and no new stream may open.
    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode)
    /// The connection closed; every stream has already heard ``HTTPStreamDelegate/streamDidClose(error:)``.
    func connectionDidClose()
    /// A graceful shutdown of this connection began; long-lived streams that would hold it open should end now.
    func connectionWillShutDown()
}

extension HTTP2ConnectionDelegate {
    public func connectionWillShutDown() {}
}

/// Drives one `nghttp2_session` from a NIO channel, as HTTP/2 server or client.
///
/// Responsibilities:
/// 1. feed every read to nghttp2 (`nghttp2_session_mem_recv`) and write everything nghttp2 wants
///    to send in one read cycle with a single write and flush (RFC 9113 §3.4 preface, §6 frames);
/// 2. turn nghttp2's callbacks into ``HTTP2Stream`` events: request/response heads, body, trailers,
///    resets (RFC 9113 §6.4), and connection events (GOAWAY §6.8, PING §6.7);
/// 3. flow control (RFC 9113 §5.2) with nghttp2's automatic WINDOW_UPDATE disabled: connection
///    credit as data arrives, stream credit only when the application calls
///    ``HTTPStream/consume(_:)``; outbound data is pulled by a deferred data provider, and no
///    frame is produced while the socket is not writable, so memory stays bounded;
/// 4. enforce limits ourselves: header list size (431), rapid reset, CONTINUATION, PING and
///    SETTINGS floods (GOAWAY ENHANCE_YOUR_CALM), handshake, idle and stalled-write timeouts;
/// 5. graceful shutdown as ``HTTP2ConnectionStateMachine`` decides, on
///    ``ChannelShouldQuiesceEvent`` or ``beginGracefulShutdown()``.
///
/// The role is independent of who dialled: on a car's tunnel the gateway accepted the TCP
/// connection yet is the HTTP/2 client.
public final class HTTP2ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Which side of HTTP/2 this connection plays.
    public enum Role: Sendable {
        /// Serve requests the peer opens, handing them to the responder.
        case server(any HTTPServerResponder)
        /// Open streams towards the peer with ``openStream(_:endStream:delegate:)``.
        case client
    }

    /// The configuration this connection runs with.
    public let configuration: HTTP2Configuration
    let role: Role
    let isServer: Bool
    /// Receives connection-level events.
    public weak var delegate: (any HTTP2ConnectionDelegate)?

    var session: OpaquePointer?
    var context: ChannelHandlerContext?
    var streams: [Int32: HTTP2Stream] = [:]
    /// The stream nghttp2 called back about last: consecutive callbacks are almost always for the
    /// same stream (a header block is many `on_header` calls), so this saves a hash lookup each.
    var cachedStream: HTTP2Stream?

    @inline(__always)
    func stream(_ id: Int32) -> HTTP2Stream? {
        if let cached = self.cachedStream, cached.id == id { return cached }
        let found = self.streams[id]
        self.cachedStream = found
        return found
    }
    var connectionInfo: HTTPConnectionInfo
    var stateMachine: HTTP2ConnectionStateMachine

    // Write batching.
    var processing = false
    var flushScheduled = false
    var needsFlush = false
    var pendingWritable: [HTTP2Stream] = []
    /// The loop's clock read once per read or flush cycle: precise enough for stall detection,
    /// and it keeps `clock_gettime` off the per-stream and per-frame path.
    var coarseNow = NIODeadline.uptimeNanoseconds(0)

    // Abuse accounting (our own counters).
    lazy var dos = DOSHeuristics(configuration: self.configuration)
    var continuationFrames = 0
    /// Why we terminated the session, for logs and tests.
    public private(set) var terminationReason: HTTP2ErrorCode?

    // Timers and PINGs.
    var handshakeComplete = false
    var handshakeTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?
    var graceTimer: Scheduled<Void>?
    var stallTimer: Scheduled<Void>?
    var keepaliveTimer: Scheduled<Void>?
    var pendingPings: [(id: UInt64, sent: NIODeadline, promise: EventLoopPromise<TimeAmount>?)] = []
    var nextPingID: UInt64 = 1
    var shutdownPingID: UInt64?
    /// The last measured PING round trip.
    public private(set) var lastRTT: TimeAmount?
    var closed = false

    /// Creates a handler.
    /// - Parameters:
    ///   - role: server (with the responder for requests) or client.
    ///   - configuration: SETTINGS and limits.
    ///   - connectionInfo: what the responder is told of the connection (addresses are filled in on activation).
    public init(role: Role, configuration: HTTP2Configuration = .defaults, connectionInfo: HTTPConnectionInfo? = nil) {
        self.role = role
        if case .server = role { self.isServer = true } else { self.isServer = false }
        self.configuration = configuration
        self.connectionInfo =
            connectionInfo
            ?? HTTPConnectionInfo(remoteAddress: nil, localAddress: nil, httpProtocol: "h2c", isTLS: false)
        self.stateMachine = HTTP2ConnectionStateMachine(isServer: self.isServer)
    }

    deinit {
        if let session = self.session { nghttp2_session_del(session) }
    }

    /// The event loop this connection lives on; valid once the handler is in a pipeline, and after.
    public var eventLoop: any EventLoop { self.loop! }
    private var loop: (any EventLoop)?

    /// Streams currently open.
    public var openStreamCount: Int { self.streams.count }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop = context.eventLoop
        self.createSession()
        if context.channel.isActive { self.activate(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.closeAllStreams(error: .connectionClosed)
        self.cancelTimers()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.activate(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.stateMachine.connectionClosed()
        self.cancelTimers()
        self.closeAllStreams(error: .connectionClosed)
        for ping in self.pendingPings { ping.promise?.fail(ChannelError.ioOnClosedChannel) }
        self.pendingPings.removeAll()
        self.delegate?.connectionDidClose()
        context.fireChannelInactive()
    }

    /// When bytes last arrived from the peer: any frame proves it alive, even while a PING ACK
    /// waits behind its data.
    public private(set) var lastInboundAt: NIODeadline = .now()

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        guard let session = self.session, !self.closed else { return }
        self.coarseNow = context.eventLoop.now
        self.lastInboundAt = self.coarseNow
        self.processing = true
        let result = buffer.withUnsafeReadableBytes { bytes -> Int in
            nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        self.processing = false
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if result < 0 {
            // nghttp2 queued a GOAWAY for protocol errors and floods where it can; send it, then close.
            self.terminationReason = self.terminationReason ?? .protocolError
            self.flush()
            self.closeNow()
            return
        }
        self.needsFlush = true
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush { self.flush() }
        context.fireChannelReadComplete()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.flush() }
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.beginGracefulShutdown()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.closeNow()
    }

    // MARK: API

    /// Opens a stream towards the peer (client role).
    /// - Parameters:
    ///   - request: the request head.
    ///   - endStream: true when there is no request body.
    ///   - delegate: receives the response.
    /// - Returns: the stream, to write the body on.
    /// - Throws: ``HTTP2ConnectionError`` when the connection is closing or nghttp2 refuses the stream.
    public func openStream(
        _ request: HTTPRequest,
        endStream: Bool,
        delegate: any HTTPStreamDelegate
    ) throws -> HTTP2Stream {
        self.eventLoop.preconditionInEventLoop()
        guard let session = self.session, !self.closed, nghttp2_session_check_request_allowed(session) != 0,
            case .active = self.stateMachine.state
        else {
            throw HTTP2ConnectionError(code: .notAcceptingStreams, message: "connection is closing")
        }
        var provider = Self.dataProvider
        let id = withUnsafePointer(to: &provider) { provider in
            NGHTTP2Headers.withNV(request: request) { nv, count in
                nghttp2_submit_request(session, nil, nv, count, endStream ? nil : provider, nil)
            }
        }
        guard id > 0 else {
            throw HTTP2ConnectionError(code: .notAcceptingStreams, message: "nghttp2_submit_request failed (\(id))")
        }
        let stream = HTTP2Stream(id: id, connection: self, delegate: delegate)
        stream.headSent = true
        stream.dataProviderAttached = !endStream
        stream.endRequested = endStream
        self.streams[id] = stream
        self.apply(self.stateMachine.streamOpened())
        self.scheduleFlush()
        return stream
    }

    /// Sends a PING and completes with the round-trip time when its ACK arrives.
    public func ping() -> EventLoopFuture<TimeAmount> {
        let promise = self.eventLoop.makePromise(of: TimeAmount.self)
        self.sendPing(promise: promise)
        return promise.futureResult
    }

    /// Starts a graceful shutdown: no new streams, in-flight ones finish, then close.
    public func beginGracefulShutdown() {
        self.delegate?.connectionWillShutDown()
        self.apply(self.stateMachine.beginGracefulShutdown())
    }

    /// Closes at once with GOAWAY carrying `code`.
    public func terminate(_ code: HTTP2ErrorCode) {
        guard let session = self.session, !self.closed else { return }
        self.terminationReason = self.terminationReason ?? code
        nghttp2_session_terminate_session(session, code.rawValue)
        self.scheduleFlush()
    }

    /// Sends GOAWAY with `code` and a reason for the peer's logs, then closes.
    public func goAway(_ code: HTTP2ErrorCode, debugData: String) {
        guard let session = self.session, !self.closed else { return }
        self.terminationReason = self.terminationReason ?? code
        let bytes = Array(debugData.utf8.prefix(256))
        bytes.withUnsafeBufferPointer { data in
            _ = nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
                code.rawValue,
                data.baseAddress, data.count)
        }
        self.flush()
        self.closeNow()
    }

    // MARK: Session set-up

    private func createSession() {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        NGHTTP2Callbacks.install(on: callbacks)

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_no_closed_streams(option, 1)
        // Our own counters trip first; nghttp2's are a backstop.
        nghttp2_option_set_max_continuations(option, self.configuration.maxContinuationFrames * 2 + 8)
        nghttp2_option_set_max_outbound_ack(option, 1000)
        nghttp2_option_set_max_settings(option, 32)
        nghttp2_option_set_stream_reset_rate_limit(
            option, UInt64(self.configuration.maxResetsPerSecond * 4), UInt64(self.configuration.maxResetsPerSecond * 2)
        )

        let userData = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        let rc =
            self.isServer
            ? nghttp2_session_server_new2(&session, callbacks, userData, option)
            : nghttp2_session_client_new2(&session, callbacks, userData, option)
        precondition(rc == 0, "Internal inconsistency: nghttp2_session_new failed (\(rc))")
        self.session = session

        var settings: [nghttp2_settings_entry] = [
            .init(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: UInt32(self.configuration.maxConcurrentStreams)),
            .init(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: UInt32(self.configuration.initialStreamWindowSize)),
            .init(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue),
                value: UInt32(self.configuration.maxFrameSize)),
            .init(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(self.configuration.maxHeaderListSize)),
        ]
        if !self.isServer {
            settings.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        if self.configuration.connectionWindowSize > 65_535 {
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(self.configuration.connectionWindowSize))
        }
    }

    private var activated = false

    private func activate(context: ChannelHandlerContext) {
        guard !self.activated else { return }
        self.activated = true
        self.connectionInfo.remoteAddress = self.connectionInfo.remoteAddress ?? context.channel.remoteAddress
        self.connectionInfo.localAddress = self.connectionInfo.localAddress ?? context.channel.localAddress
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.handshakeTimer = context.eventLoop.scheduleTask(in: self.configuration.handshakeTimeout) {
            if !loopBound.value.handshakeComplete { loopBound.value.terminate(.settingsTimeout) }
        }
        if let interval = self.configuration.keepaliveInterval { self.scheduleKeepalive(interval) }
        if let stall = self.configuration.stallTimeout { self.scheduleStallCheck(stall) }
        self.apply(.startIdleTimer)
        self.flush()
    }

    // MARK: Writing

    func scheduleFlush() {
        if self.processing {
            self.needsFlush = true
            return
        }
        guard !self.flushScheduled, let context = self.context else { return }
        self.flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBound.value.flushScheduled = false
            loopBound.value.flush()
        }
    }

    /// Writes everything nghttp2 has to send, as one buffer and one flush.
    func flush() {
        self.needsFlush = false
        guard let session = self.session, let context = self.context, !self.processing else { return }
        var buffer: ByteBuffer?
        self.coarseNow = context.eventLoop.now
        self.processing = true
        // Nothing is produced while the socket is not writable: whatever nghttp2 has stays inside
        // it, bounded by flow control and max_outbound_ack; channelWritabilityChanged resumes.
        while context.channel.isWritable {
            var pointer: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &pointer)
            if n < 0 {
                self.processing = false
                self.closeNow()
                return
            }
            if n == 0 { break }
            if buffer == nil { buffer = context.channel.allocator.buffer(capacity: max(n, 1024)) }
            buffer!.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
            if buffer!.readableBytes >= 256 * 1024 { break }
        }
        self.processing = false
        if let buffer, buffer.readableBytes > 0 {
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
        if self.closeAfterFlush {
            self.closeNow()
            return
        }
        if !self.pendingWritable.isEmpty {
            let streams = self.pendingWritable
            self.pendingWritable.removeAll(keepingCapacity: true)
            for stream in streams where !stream.isClosed {
                stream.delegate?.streamWritabilityDidChange(isWritable: true)
            }
        }
        if self.needsFlush || (context.channel.isWritable && nghttp2_session_want_write(session) != 0 && buffer != nil)
        {
            self.scheduleFlush()
        }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            self.closeNow()
        }
    }

    /// Closes the channel; when called from inside nghttp2 (a callback during `mem_recv` or
    /// `mem_send`), only after the bytes being assembled have been written.
    func closeNow() {
        guard !self.closed, let context = self.context else { return }
        if self.processing {
            self.closeAfterFlush = true
            self.needsFlush = true
            return
        }
        self.closed = true
        context.close(promise: nil)
    }

    var closeAfterFlush = false

    // MARK: Stream operations (called by HTTP2Stream)

    static let dataProvider: nghttp2_data_provider = {
        var provider = nghttp2_data_provider()
        provider.read_callback = NGHTTP2Callbacks.readData
        return provider
    }()

    func submitResponse(_ response: HTTPResponse, on stream: HTTP2Stream, withBody: Bool) {
        guard let session = self.session else { return }
        var provider = Self.dataProvider
        stream.dataProviderAttached = withBody
        let rc = withUnsafePointer(to: &provider) { provider in
            NGHTTP2Headers.withNV(response: response) { nv, count in
                nghttp2_submit_response(session, stream.id, nv, count, withBody ? provider : nil)
            }
        }
        if rc != 0 { self.resetStream(stream, code: .internalError) }
        self.scheduleFlush()
    }

    func resumeData(_ stream: HTTP2Stream) {
        guard let session = self.session else { return }
        nghttp2_session_resume_data(session, stream.id)
        self.scheduleFlush()
    }

    func resetStream(_ stream: HTTP2Stream, code: HTTP2ErrorCode) {
        guard let session = self.session else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code.rawValue)
        stream.delegateErrorOverride = HTTPStreamError(code: code, byPeer: false)
        self.scheduleFlush()
    }

    func consumeStream(_ stream: HTTP2Stream, bytes: Int) {
        guard let session = self.session else { return }
        nghttp2_session_consume_stream(session, stream.id, bytes)
        self.scheduleFlush()
    }

    private func closeAllStreams(error: HTTPStreamError) {
        let open = self.streams.values
        self.streams.removeAll()
        self.cachedStream = nil
        for stream in open { stream.markClosed(error: error) }
    }

    // MARK: PING, timers

    func sendPing(promise: EventLoopPromise<TimeAmount>?) {
        guard let session = self.session, !self.closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let id = self.nextPingID
        self.nextPingID &+= 1
        var opaque = id.bigEndian
        withUnsafeBytes(of: &opaque) { bytes in
            _ = nghttp2_submit_ping(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }
        self.pendingPings.append((id, self.eventLoop.now, promise))
        if self.pendingPings.count > 16 {
            self.pendingPings.removeFirst().promise?.fail(
                HTTP2ConnectionError(code: .pingTimeout, message: "PING unanswered"))
        }
        self.scheduleFlush()
    }

    func pingAcknowledged(opaque: UInt64) {
        guard let index = self.pendingPings.firstIndex(where: { $0.id == opaque }) else { return }
        let ping = self.pendingPings.remove(at: index)
        let rtt = self.eventLoop.now - ping.sent
        self.lastRTT = rtt
        ping.promise?.succeed(rtt)
        if opaque == self.shutdownPingID {
            self.shutdownPingID = nil
            self.apply(self.stateMachine.shutdownNoticeAcknowledged())
        }
    }

    private func scheduleKeepalive(_ interval: TimeAmount) {
        guard let context = self.context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timeout = self.configuration.keepaliveTimeout
        self.keepaliveTimer = context.eventLoop.scheduleTask(in: interval) {
            let handler = loopBound.value
            guard !handler.closed else { return }
            let pong = handler.ping()
            let deadline = handler.eventLoop.scheduleTask(in: timeout) {
                loopBound.value.terminate(.noError)
                loopBound.value.closeNow()
            }
            pong.whenComplete { _ in deadline.cancel() }
            handler.scheduleKeepalive(interval)
        }
    }

    private func scheduleStallCheck(_ stall: TimeAmount) {
        guard let context = self.context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.stallTimer = context.eventLoop.scheduleTask(
            in: max(.nanoseconds(stall.nanoseconds / 4), .milliseconds(10))
        ) {
            let handler = loopBound.value
            guard !handler.closed else { return }
            let now = handler.eventLoop.now
            for stream in handler.streams.values
            where stream.bufferedOutboundBytes > 0 && now - stream.lastProgress > stall {
                stream.reset(.cancel)
            }
            handler.scheduleStallCheck(stall)
        }
    }

    private func cancelTimers() {
        self.handshakeTimer?.cancel()
        self.idleTimer?.cancel()
        self.graceTimer?.cancel()
        self.stallTimer?.cancel()
        self.keepaliveTimer?.cancel()
    }

    func apply(_ action: HTTP2ConnectionStateMachine.Action) {
        if case .none = action { return }
        guard let context = self.context, let session = self.session else { return }
        switch action {
        case .none:
            return
        case .startIdleTimer:
            guard let idle = self.configuration.idleTimeout else { return }
            self.idleTimer?.cancel()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            self.idleTimer = context.eventLoop.scheduleTask(in: idle) {
                loopBound.value.apply(loopBound.value.stateMachine.idleTimerFired())
            }
        case .cancelIdleTimer:
            self.idleTimer?.cancel()
            self.idleTimer = nil
        case .sendShutdownNotice:
            nghttp2_submit_shutdown_notice(session)
            let id = self.nextPingID
            self.shutdownPingID = id
            self.sendPing(promise: nil)
            self.startGraceTimer()
        case .sendFinalGoAway(let thenClose):
            let last = self.isServer ? nghttp2_session_get_last_proc_stream_id(session) : 0
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, HTTP2ErrorCode.noError.rawValue, nil, 0)
            self.startGraceTimer()
            self.flush()
            if thenClose { self.closeNow() }
        case .close:
            self.flush()
            self.closeNow()
        }
    }

    private func startGraceTimer() {
        guard self.graceTimer == nil, let context = self.context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.graceTimer = context.eventLoop.scheduleTask(in: self.configuration.gracefulShutdownTimeout) {
            loopBound.value.apply(loopBound.value.stateMachine.graceTimerFired())
        }
    }
}

/// An error of the HTTP/2 connection API.
public struct HTTP2ConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: Code
    /// Detail for people.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable { case notAcceptingStreams, pingTimeout }
        private let value: Value
        /// The connection is closing or at its stream limit; use another connection.
        public static var notAcceptingStreams: Self { Self(value: .notAcceptingStreams) }
        /// A PING was not answered in time.
        public static var pingTimeout: Self { Self(value: .pingTimeout) }
        public var description: String { "\(self.value)" }
    }

    public var description: String { "\(self.code): \"\(self.message)\"" }
}
