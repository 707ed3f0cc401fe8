internal import CNGHTTP2
import HTTPTypes
import NIOCore

/// Writing: one buffer and one flush per cycle, the deferred data provider, and the stream
/// operations ``HTTP2Stream`` calls.
extension HTTP2ConnectionHandler {
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

    // MARK: Stream operations (called by HTTP2Stream)

    static let dataProvider: nghttp2_data_provider = {
        var provider = nghttp2_data_provider()
        provider.read_callback = NGHTTP2Callbacks.readData
        return provider
    }()

    func submitResponse(_ response: HTTPResponse, on stream: HTTP2Stream, withBody: Bool) {
        NGHTTP2Headers.withNV(response: response) { nv, count in
            self.submitResponse(nv: nv, count: count, on: stream, withBody: withBody)
        }
    }

    /// Submits a response head given as nghttp2's name/value pairs (nghttp2 copies them), with the
    /// stream's data provider when `withBody`; a refused submit resets the stream. False when refused.
    @discardableResult
    func submitResponse(nv: UnsafePointer<nghttp2_nv>, count: Int, on stream: HTTP2Stream, withBody: Bool) -> Bool {
        guard let session = self.session else { return false }
        var provider = Self.dataProvider
        stream.dataProviderAttached = withBody
        let rc = withUnsafePointer(to: &provider) { provider in
            nghttp2_submit_response(session, stream.id, nv, count, withBody ? provider : nil)
        }
        if rc != 0 {
            self.resetStream(stream, code: .internalError)
            return false
        }
        self.scheduleFlush()
        return true
    }

    /// Sends `100 Continue` on a server's stream, before its response (a non-final head).
    func submitContinue(on stream: HTTP2Stream) {
        guard let session = self.session else { return }
        let rc = NGHTTP2Headers.withNV(response: HTTPResponse(status: .continue)) { nv, count in
            nghttp2_submit_headers(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, nil, nv, count, nil)
        }
        if rc < 0 { return self.resetStream(stream, code: .internalError) }
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

    /// nghttp2 asks for up to `destination.count` bytes of `streamID`'s body (the deferred data
    /// provider): copy what is queued, end the body (with trailers) once asked to, or defer until
    /// ``HTTP2Stream/sendData(_:endStream:)`` queues more.
    /// - Returns: the bytes copied, or an nghttp2 error code (`NGHTTP2_ERR_DEFERRED`, or
    ///   `NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE` for a stream we no longer know).
    @inline(__always)
    func dataRequested(
        session: OpaquePointer?,
        streamID: Int32,
        into destination: UnsafeMutableRawBufferPointer,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = self.stream(streamID) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let written = stream.pull(into: destination)
        if stream.drainedBelowLowWatermark() { self.pendingWritable.append(stream) }
        if stream.bufferedOutboundBytes == 0 {
            if stream.endRequested {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = stream.trailers {
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    _ = NGHTTP2Headers.withNV(fields: trailers) { nv, count in
                        nghttp2_submit_trailer(session, streamID, nv, count)
                    }
                }
                return written
            }
            if written == 0 {
                stream.dataDeferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return written
    }
}
