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
    public internal(set) var delegate: (any HTTPStreamDelegate)?

    // Inbound header block being assembled.
    var pseudo = PseudoHeaders()
    var fields = HTTPFields()
    var headerListBytes = 0
    var headerListTooLarge = false
    /// Unused: ``DOSHeuristics`` counts CONTINUATION frames per connection.
    ///
    /// Dropping it moves this object
    /// into another malloc size class, measured ~100 instructions per request slower in fleet-h2bench
    /// (callgrind, same number of mallocs); remove it together with a measurement.
    var continuationFrames = 0
    var receivedHead = false
    var receivedEnd = false
    /// Whether the responder's early answer was asked, and what it said
    /// (`HTTP2ConnectionHandler+EarlyResponse.swift`).
    var early: EarlyAnswer = .unasked

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

    public private(set) var isClosed = false
    /// Set when we reset the stream, so its close reports our code rather than the peer's.
    var delegateErrorOverride: HTTPStreamError?

    init(id: Int32, connection: HTTP2ConnectionHandler, delegate: (any HTTPStreamDelegate)?) {
        self.id = id
        self._connection = connection
        self.eventLoop = connection.eventLoop
        self.delegate = delegate
        self.lastProgress = connection.coarseNow
    }

    public var isWritable: Bool { self.reportedWritable }

    public func sendResponse(_ response: HTTPResponse, endStream: Bool) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed, !self.headSent else { return }
        self.headSent = true
        if endStream { self.endRequested = true }
        self.connection.submitResponse(response, on: self, withBody: !endStream)
    }

    public func flushNow() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed else { return }
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
        guard !self.isClosed, !self.endRequested else { return }
        if data.readableBytes > 0 {
            if self.outbound == nil || self.outbound!.readableBytes == 0 {
                self.lastProgress = self.connection.coarseNow  // the stall clock starts when output waits
                self.outbound = data
            } else {
                var data = data
                self.outbound!.writeBuffer(&data)
            }
        }
        if endStream { self.endRequested = true }
        self.outboundChanged()
    }

    public func sendEnd(trailers: HTTPFields?) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed, !self.endRequested else { return }
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
        guard !self.isClosed else { return }
        self.connection.resetStream(self, code: code)
    }

    public func consume(_ bytes: Int) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed, bytes > 0 else { return }
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
        guard var buffer = self.outbound, buffer.readableBytes > 0 else { return 0 }
        self.outbound = nil  // keep the buffer uniquely referenced while reading from it
        let n = min(destination.count, buffer.readableBytes)
        buffer.withUnsafeReadableBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: destination[0..<n]).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: source[0..<n]))
        }
        buffer.moveReaderIndex(forwardBy: n)
        if buffer.readableBytes > 0 {
            self.outbound = buffer
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

    /// Adds one field of the inbound header block, which nghttp2 has validated (RFC 9113 §8.2.1,
    /// §8.3): pseudo-header fields are told apart by length and a letter, others are appended.
    @inline(__always)
    func appendHeaderField(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        if name.count > 1 && name[0] == UInt8(ascii: ":") {
            switch (name.count, name[1]) {
            case (7, UInt8(ascii: "m")): self.pseudo.method = InboundField.pseudoValue(value)
            case (7, UInt8(ascii: "s")) where name[2] == UInt8(ascii: "c"):
                self.pseudo.scheme = InboundField.pseudoValue(value)
            case (7, UInt8(ascii: "s")): self.pseudo.status = String(decoding: value, as: UTF8.self)
            case (10, UInt8(ascii: "a")): self.pseudo.authority = String(decoding: value, as: UTF8.self)
            case (5, UInt8(ascii: "p")): self.pseudo.path = String(decoding: value, as: UTF8.self)
            default: break
            }
            return
        }
        if let fieldName = InboundField.name(name) {
            self.fields.append(InboundField.field(fieldName, value: value))
        }
    }

    func markClosed(error: HTTPStreamError?) {
        guard !self.isClosed else { return }
        self.isClosed = true
        self._connection = nil
        self.outbound = nil
        let delegate = self.delegate
        self.delegate = nil
        delegate?.streamDidClose(error: error)
    }
}

/// The pseudo-header fields of an inbound header block.
struct PseudoHeaders {
    var method: String?
    var scheme: String?
    var authority: String?
    var path: String?
    var status: String?

    mutating func reset() { self = PseudoHeaders() }
}
