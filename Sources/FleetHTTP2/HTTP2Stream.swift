public import HTTPTypes
public import NIOCore

/// One HTTP/2 stream on an ``HTTP2ConnectionHandler``, in either role.
///
/// Owned by its connection (a dictionary entry, removed when nghttp2 closes the stream).
/// Outbound bytes queue here and nghttp2 pulls them through a deferred data provider as the
/// peer's window allows; inbound bytes give stream-level window back only through
/// ``consume(_:)``. Every method must be called on ``eventLoop``.
public final class HTTP2Stream: HTTPStream {
    /// The stream id.
    public let id: Int32
    /// The event loop every call must be made on.
    public let eventLoop: any EventLoop
    /// The connection; held strongly while the stream is open (the connection's dictionary holds
    /// the stream), dropped on close so a stream kept by the application never outlives it unsafely.
    private var _connection: HTTP2ConnectionHandler?
    var connection: HTTP2ConnectionHandler { self._connection! }
    /// Receives this stream's events.
    public var delegate: (any HTTPStreamDelegate)? { self.streamDelegate }
    // The state behind public getters is internal: the optimizer removes the run-time exclusivity
    // checks of a property only when it sees every access, which it cannot for a public one.
    var streamDelegate: (any HTTPStreamDelegate)?

    // The inbound header block is assembled by the connection (`InboundHead`): blocks never interleave.
    var receivedHead = false
    var receivedEnd = false
    /// Whether the responder's early answer was asked, and what it said
    /// (`HTTP2ConnectionHandler+EarlyResponse.swift`).
    var early: EarlyAnswer = .unasked
    /// The request's value of the early answer's echoed field (``HTTPPrebuiltResponse/Echo``).
    var earlyEcho: [UInt8]?
    /// While the rest of the request body is read and dropped after an answer that did not wait
    /// for it (``drainUnfinishedRequest()``): the bytes still accepted, and when the request must have ended.
    var drain: (left: Int, deadline: NIODeadline)?
    /// A server's stream whose request is `HEAD`: its response head ends the stream, and the body the
    /// responder writes as for `GET` is dropped (RFC 9110 §9.3.2; a body after it is a protocol error
    /// to the client — helper-127: every HEAD over HTTP/2, `/healthz` included, was reset).
    var answersHead = false

    // Outbound.
    /// Queued outbound bytes: one buffer, appended to (the common case is one small write at a time).
    var outbound: ByteBuffer?
    public var bufferedOutboundBytes: Int { self.outbound?.readableBytes ?? 0 }
    var endRequested = false
    var trailers: HTTPFields?
    var dataProviderAttached = false
    var dataDeferred = false
    var headSent = false
    var reportedWritable = true
    var lastProgress: NIODeadline

    public var isClosed: Bool { self.closed }
    var closed = false
    /// Set when we reset the stream, so its close reports our code rather than the peer's.
    var delegateErrorOverride: HTTPStreamError?
    /// Whether the peer's reset of this stream, or the invalid frame that made nghttp2 reset it, was
    /// counted against the reset limit already (``DOSHeuristics``): its close is not counted again.
    var resetCounted = false

    init(id: Int32, connection: HTTP2ConnectionHandler, delegate: (any HTTPStreamDelegate)?) {
        self.id = id
        self._connection = connection
        self.eventLoop = connection.eventLoop
        self.streamDelegate = delegate
        self.lastProgress = connection.coarseNow
    }

    public var isWritable: Bool { self.reportedWritable }

    public func sendResponse(_ response: HTTPResponse, endStream: Bool) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed, !self.headSent else { return }
        self.headSent = true
        let endStream = endStream || self.answersHead
        if endStream { self.endRequested = true }
        self.connection.submitResponse(response, on: self, withBody: !endStream)
        if endStream { self.drainUnfinishedRequest() }
    }

    public func flushNow() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed else { return }
        // Inside the connection's own processing a flush would be refused (and would clear a
        // flush asked for meanwhile): leave it to the end of that processing.
        if self.connection.processing {
            self.connection.scheduleFlush()
        } else {
            self.connection.flush()
        }
    }

    public func sendData(_ data: ByteBuffer, endStream: Bool) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed, !self.endRequested else { return }
        if data.readableBytes > 0 {
            // The queue is moved out, appended to, and swapped back, so no access to `outbound` spans
            // a call: the optimizer then drops its run-time exclusivity checks (one per access).
            var queued = self.outbound.take()
            if queued != nil && queued!.readableBytes > 0 {
                var data = data
                // What nghttp2 pulled goes first: a reader slower than the answer always leaves some queued,
                // and the buffer grew by every byte the stream sent (helper-128).
                if queued!.readerIndex > queued!.readableBytes { queued!.discardReadBytes() }
                queued!.writeBuffer(&data)
            } else {
                self.lastProgress = self.connection.coarseNow  // the stall clock starts when output waits
                queued = data
            }
            swap(&self.outbound, &queued)
        }
        if endStream { self.endRequested = true }
        self.outboundChanged()
        if endStream { self.drainUnfinishedRequest() }
    }

    public func sendEnd(trailers: HTTPFields?) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed, !self.endRequested else { return }
        self.endRequested = true
        if let trailers, !trailers.isEmpty { self.trailers = trailers }
        if !self.headSent {
            // A server that never sent a head: end with an empty 200 head is wrong; reset instead.
            self.reset(.internalError)
            return
        }
        self.outboundChanged()
    }

    public func reset(_ code: HTTP2ErrorCode) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed else { return }
        self.connection.resetStream(self, code: code)
    }

    /// A server's response ended before its request (RFC 9113 §8.1: a 401 on the head, a 413, a 408):
    /// the rest of the request body is read and dropped, its flow-control window given back, so a
    /// client still sending it finishes and keeps the response; the stream is reset with `NO_ERROR`
    /// only past 1 MiB more or 10 s (`HTTP2ConnectionHandler+EarlyResponse.swift`). The delegate hears
    /// no more data; it still hears the end and the close. Every response that ends does this, so no
    /// answering delegate has to remember it.
    private func drainUnfinishedRequest() {
        guard self.connection.isServer, !self.receivedEnd, !self.closed else { return }
        self.connection.drain(self)
    }

    public func consume(_ bytes: Int) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.closed, bytes > 0 else { return }
        self.connection.consumeStream(self, bytes: bytes)
    }

    private func outboundChanged() {
        if self.bufferedOutboundBytes > self.connection.configuration.outboundHighWatermark {
            self.setWritable(false)
        }
        if self.dataProviderAttached && self.dataDeferred {
            self.dataDeferred = false
            self.connection.resumeData(self)
        }
    }

    /// nghttp2 pulls up to `capacity` bytes; returns how many were copied and whether the body ended.
    func pull(into destination: UnsafeMutableRawBufferPointer) -> Int {
        // Moved out (uniquely referenced while read from) and swapped back: see sendData.
        guard var buffer = self.outbound.take(), buffer.readableBytes > 0 else { return 0 }
        let n = min(destination.count, buffer.readableBytes)
        buffer.withUnsafeReadableBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: destination[0..<n]).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: source[0..<n]))
        }
        buffer.moveReaderIndex(forwardBy: n)
        if buffer.readableBytes > 0 {
            var rest: ByteBuffer? = consume buffer
            swap(&self.outbound, &rest)
        }
        if n > 0 { self.lastProgress = self.connection.coarseNow }
        return n
    }

    /// Returns true when writability flipped back on and the delegate must hear of it.
    func drainedBelowLowWatermark() -> Bool {
        if !self.reportedWritable && self.bufferedOutboundBytes <= self.connection.configuration.outboundLowWatermark {
            self.reportedWritable = true
            return true
        }
        return false
    }

    func setWritable(_ writable: Bool) {
        guard writable != self.reportedWritable else { return }
        self.reportedWritable = writable
        self.delegate?.streamWritabilityDidChange(isWritable: writable)
    }

    func markClosed(error: HTTPStreamError?) {
        guard !self.closed else { return }
        self.closed = true
        // `take()` moves each value out and releases it after the property access ends: an
        // assignment of nil would release inside the access, which keeps its dynamic
        // exclusivity check (a release can run a deinit).
        _ = self._connection.take()
        _ = self.outbound.take()
        self.streamDelegate.take()?.streamDidClose(error: error)
    }
}
