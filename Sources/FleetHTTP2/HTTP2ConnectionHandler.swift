internal import CNGHTTP2
public import HTTPTypes
public import NIOCore

/// Drives one `nghttp2_session` from a NIO channel, as HTTP/2 server or client.
///
/// Responsibilities:
/// 1. feed every read to nghttp2 (`nghttp2_session_mem_recv`) and write everything nghttp2 wants
///    to send in one read cycle with a single write and flush (RFC 9113 §3.4 preface, §6 frames);
///    `+Writing.swift`;
/// 2. turn nghttp2's callbacks into ``HTTP2Stream`` events: request/response heads, body, trailers,
///    resets (RFC 9113 §6.4), and connection events (GOAWAY §6.8, PING §6.7); `+Session.swift`
///    is the interface the C callbacks in `Internal/NGHTTP2Callbacks.swift` call;
/// 3. flow control (RFC 9113 §5.2) with nghttp2's automatic WINDOW_UPDATE disabled: connection
///    credit as data arrives, stream credit only when the application calls
///    ``HTTPStream/consume(_:)``; outbound data is pulled by a deferred data provider, and no
///    frame is produced while the socket is not writable, so memory stays bounded;
/// 4. enforce limits: header list size (431) here, and rapid reset, CONTINUATION, PING and
///    SETTINGS floods (GOAWAY ENHANCE_YOUR_CALM) as ``DOSHeuristics`` decides;
/// 5. handshake, keepalive, stalled-write and idle timeouts, PINGs and graceful shutdown as
///    ``HTTP2ConnectionStateMachine`` decides, on its timers (`+Timers.swift`), on
///    ``ChannelShouldQuiesceEvent`` or ``beginGracefulShutdown()``.
///
/// The role is independent of who dialled: on a car's tunnel the gateway accepted the TCP
/// connection yet is the HTTP/2 client.
public final class HTTP2ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer
    typealias StateMachine = HTTP2ConnectionStateMachine

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
    private var loop: (any EventLoop)?
    var connectionInfo: HTTPConnectionInfo
    let streams = StreamTable<HTTP2Stream>()
    /// The header block being received (blocks never interleave on a connection).
    let inboundHead = InboundHead()

    // Policy: pure values that decide; this handler performs what they answer.
    var stateMachine: StateMachine
    var dos: DOSHeuristics
    var timers = Timers()
    /// Who waits for each caller's PING (``ping()``), by the id the state machine gave it.
    var pingWaiters: [(id: UInt64, promise: EventLoopPromise<TimeAmount>)] = []

    // Write batching (`+Writing.swift`).
    var processing = false
    var flushScheduled = false
    var needsFlush = false
    var closeAfterFlush = false
    var pendingWritable: [HTTP2Stream] = []
    /// Resets the streams drained past their deadline (`+EarlyResponse.swift`); nil while none drains.
    var drainSweep: Scheduled<Void>?
    /// The loop's clock read once per read or flush cycle: precise enough for stall detection and
    /// the abuse windows, and it keeps `clock_gettime` off the per-stream and per-frame path.
    var coarseNow = NIODeadline.uptimeNanoseconds(0)

    private var activated = false
    var closed = false
    /// Why we terminated the session, for logs and tests.
    public private(set) var terminationReason: HTTP2ErrorCode?
    /// When bytes last arrived from the peer: any frame proves it alive, even while a PING ACK
    /// waits behind its data.
    public private(set) var lastInboundAt: NIODeadline = .now()

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
        self.stateMachine = StateMachine(isServer: self.isServer, configuration: configuration)
        self.dos = DOSHeuristics(configuration: configuration)
    }

    deinit {
        if let session = self.session { nghttp2_session_del(session) }
    }

    /// The event loop this connection lives on; valid once the handler is in a pipeline, and after.
    public var eventLoop: any EventLoop { self.loop! }

    /// Streams currently open.
    public var openStreamCount: Int { self.streams.count }

    /// The streams the connection's close ended (their ids), for what a delegate reports after it:
    /// by ``HTTP2ConnectionDelegate/connectionDidClose()`` they are already closed.
    public private(set) var streamsCutByClose: [Int32] = []

    /// The last measured PING round trip.
    public var lastRTT: TimeAmount? { self.stateMachine.lastRTT }

    /// The open stream `id` (a table probe: no hashing, so no cache of the last one either).
    @inline(__always)
    func stream(_ id: Int32) -> HTTP2Stream? {
        self.streams[id]
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop = context.eventLoop
        guard self.createSession() else {
            self.closed = true
            context.close(promise: nil)
            return
        }
        if context.channel.isActive { self.activate(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.closeAllStreams(error: .connectionClosed)
        self.timers.cancelAll()
        self.drainSweep?.cancel()
        self.drainSweep = nil
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.activate(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.stateMachine.connectionClosed()
        self.timers.cancelAll()
        self.closeAllStreams(error: .connectionClosed)
        let unanswered = self.pingWaiters
        self.pingWaiters.removeAll()
        for waiter in unanswered { waiter.promise.fail(ChannelError.ioOnClosedChannel) }
        self.delegate?.connectionDidClose()
        context.fireChannelInactive()
    }

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
        self.delegate?.connectionDidCatch(error)
        self.closeNow()
    }

    private func activate(context: ChannelHandlerContext) {
        guard !self.activated else { return }
        self.activated = true
        self.connectionInfo.fillAddresses(from: context.channel)
        self.apply(self.stateMachine.connectionActivated())
        self.flush()
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
        self.streams.insert(stream, for: id)
        self.apply(self.stateMachine.streamOpened())
        self.scheduleFlush()
        return stream
    }

    /// Sends a PING and completes with the round-trip time when its ACK arrives.
    public func ping() -> EventLoopFuture<TimeAmount> {
        let promise = self.eventLoop.makePromise(of: TimeAmount.self)
        guard self.session != nil, !self.closed else {
            promise.fail(ChannelError.ioOnClosedChannel)
            return promise.futureResult
        }
        let action = self.stateMachine.pingRequested(at: self.eventLoop.now)
        if case .sendPing(let ping) = action { self.pingWaiters.append((ping.id, promise)) }
        self.apply(action)
        return promise.futureResult
    }

    /// Starts a graceful shutdown: no new streams, in-flight ones finish, then close.
    public func beginGracefulShutdown() {
        self.delegate?.connectionWillShutDown()
        self.apply(self.stateMachine.beginGracefulShutdown(at: self.loop?.now ?? .now()))
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

    private func closeAllStreams(error: HTTPStreamError) {
        let open = self.streams.all
        if !open.isEmpty { self.streamsCutByClose = open.map(\.id) }
        self.streams.removeAll()
        for stream in open { stream.markClosed(error: error) }
    }
}
