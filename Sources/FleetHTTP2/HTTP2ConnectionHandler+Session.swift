internal import CNGHTTP2
import HTTPTypes
import NIOCore

/// The session: nghttp2's set-up, and the interface its C callbacks call.
///
/// `Internal/NGHTTP2Callbacks.swift` only translates each C call into one of the `received…`,
/// `headerBlock…` or `streamClosed` events below; what an event means (abuse counting, the
/// connection's lifecycle, stream state) is decided here and in the policy values, not there.
extension HTTP2ConnectionHandler {
    /// - Returns: false when nghttp2 could not allocate the session (out of memory): the caller
    ///   closes this connection rather than take the process — and every other stream — down.
    func createSession() -> Bool {
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
        guard rc == 0, let session else { return false }
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
        return true
    }

    /// Performs a ``DOSHeuristics`` verdict.
    @inline(__always)
    private func enforce(_ verdict: DOSHeuristics.Verdict) {
        if verdict == .enhanceYourCalm { self.terminate(.enhanceYourCalm) }
    }

    // MARK: Frames (nghttp2's on_begin_frame and on_frame_recv)

    /// A HEADERS frame's header arrived: a new header block begins.
    @inline(__always)
    func receivedHeadersFrameHeader() {
        self.dos.receivedHeadersFrame()
    }

    /// A CONTINUATION frame's header arrived.
    @inline(__always)
    func receivedContinuationFrameHeader() {
        self.enforce(self.dos.receivedContinuationFrame())
    }

    /// A RST_STREAM frame arrived on `streamID` (nghttp2 closes the stream itself).
    func receivedReset(streamID: Int32) {
        self.stream(streamID)?.resetCounted = true
        self.enforce(self.dos.receivedReset(at: self.coarseNow))
    }

    /// A frame nghttp2 found invalid, after which it resets the stream (a stream error) or ends the
    /// connection. Each reset the peer makes us send counts as one it sent: MadeYouReset (CVE-2025-8671)
    /// cancels work with frames the server must answer with RST_STREAM — a WINDOW_UPDATE overflowing the
    /// stream's window, say — which the count of received RST_STREAM frames never saw (helper-72: 19,229
    /// resets in 5 s on one connection, 6,208 car jobs started and cancelled, no GOAWAY). Debian's
    /// libnghttp2 1.52 predates upstream's own guard (1.66). Resets nghttp2 sends without calling this
    /// are counted as their streams close (``streamClosed(streamID:errorCode:)``).
    func receivedInvalidFrame(streamID: Int32) {
        self.stream(streamID)?.resetCounted = true
        self.enforce(self.dos.receivedReset(at: self.coarseNow))
    }

    /// A DATA frame with no data and without END_STREAM arrived.
    func receivedEmptyData() {
        self.enforce(self.dos.receivedEmptyData(at: self.coarseNow))
    }

    /// A WINDOW_UPDATE frame arrived (nghttp2 applies it).
    func receivedWindowUpdate() {
        self.enforce(self.dos.receivedWindowUpdate(at: self.coarseNow))
    }

    /// A PRIORITY frame arrived (nghttp2 applies it).
    func receivedPriority() {
        self.enforce(self.dos.receivedPriority(at: self.coarseNow))
    }

    /// A PING (not an ACK) arrived; nghttp2 answers it.
    func receivedPing() {
        self.enforce(self.dos.receivedPing(at: self.coarseNow))
    }

    /// A PING ACK carrying `opaque` arrived.
    func receivedPingAck(opaque: UInt64) {
        self.apply(self.stateMachine.receivedPingAck(opaque: opaque, at: self.eventLoop.now))
    }

    /// A SETTINGS frame (not an ACK) arrived; nghttp2 applies and acknowledges it.
    func receivedSettings() {
        self.enforce(self.dos.receivedSettings(at: self.coarseNow))
    }

    /// The peer acknowledged our SETTINGS.
    func receivedSettingsAck() {
        self.apply(self.stateMachine.receivedSettingsAck())
    }

    /// A GOAWAY arrived.
    func receivedGoAway(lastStreamID: Int32, errorCode: UInt32, debugData: String) {
        self.delegate?.connectionDidReceiveGoAway(
            lastStreamID: lastStreamID, errorCode: HTTP2ErrorCode(rawValue: errorCode), debugData: debugData)
    }

    // MARK: Header blocks (on_begin_headers, on_header, on_frame_recv for HEADERS)

    /// A header block begins on `streamID`; `isRequest` when it opens a stream the peer initiated.
    @inline(__always)
    func headerBlockBegins(streamID: Int32, isRequest: Bool) {
        if self.isServer && isRequest {
            let stream = HTTP2Stream(id: streamID, connection: self, delegate: nil)
            self.streams.insert(stream, for: streamID)
            self.apply(self.stateMachine.streamOpened())
            self.inboundHead.begin(.requestUnasked, streamID: streamID)
        } else {
            self.inboundHead.begin(self.stream(streamID) == nil ? .ignored : .collected, streamID: streamID)
        }
    }

    /// One field of the header block on `streamID`.
    /// - Returns: false once the block is over SETTINGS_MAX_HEADER_LIST_SIZE: nghttp2 then resets
    ///   the stream and skips the rest of the block.
    @inline(__always)
    func receivedHeaderField(
        streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        let purpose = self.inboundHead.purpose
        if purpose == .ignored { return true }
        // RFC 9113 §6.5.2: the list size counts each field's name, value and 32 bytes.
        self.inboundHead.listBytes += name.count + value.count + 32
        if self.inboundHead.listBytes > self.configuration.maxHeaderListSize {
            // Stop here: nghttp2 resets the stream and skips the rest of the block (it still
            // inflates it to keep HPACK in step, but validates and copies nothing). Going on
            // would let a 256 KiB HPACK bomb cost a gigabyte of validation (issue #18 row 6).
            self.inboundHead.tooLarge = true
            self.enforce(self.dos.receivedOversizedHeaderList(at: self.coarseNow))
            return false
        }
        // Issue #19: a request's route is known with its first regular field; one answered early
        // converts nothing more. Only then is the stream looked up, not for every field.
        if purpose != .collected && name.first != UInt8(ascii: ":") {
            guard let stream = self.stream(streamID) else { return true }
            if purpose == .requestAnswered || self.answersEarly(stream) {
                self.inboundHead.purpose = .requestAnswered
                self.keepEarlyEcho(stream, name: name, value: value)
                return true
            }
            self.inboundHead.purpose = .collected
        }
        self.inboundHead.append(name: name, value: value)
        return true
    }

    /// A complete header block arrived on `streamID`: a head, or trailers.
    @inline(__always)
    func receivedHeaders(streamID: Int32, endStream: Bool) {
        guard let stream = self.stream(streamID) else { return }
        if !stream.receivedHead {
            if self.isServer {
                stream.receivedHead = true
                stream.answersHead = self.inboundHead.pseudo.method == "HEAD"
                if self.answersEarly(stream) {
                    self.answerEarly(stream)
                } else {
                    self.requestReceived(on: stream, bodyFollows: !endStream)
                }
            } else {
                guard let statusString = self.inboundHead.pseudo.status, let code = Int(statusString) else {
                    stream.reset(.protocolError)
                    return
                }
                if (100..<200).contains(code) { return }  // informational: wait for the final head
                stream.receivedHead = true
                let response = HTTPResponse(
                    status: .init(code: code), headerFields: self.inboundHead.takeFields(isHead: true))
                stream.delegate?.streamDidReceiveResponse(response)
            }
            if endStream { self.endReceived(on: stream, trailers: nil) }
        } else {
            self.endReceived(on: stream, trailers: self.inboundHead.takeFields(isHead: false))
        }
    }

    private func requestReceived(on stream: HTTP2Stream, bodyFollows: Bool) {
        guard case .server(let responder) = self.role else { return }
        if self.inboundHead.tooLarge {
            stream.sendResponse(HTTPResponse(status: .requestHeaderFieldsTooLarge), endStream: true)
            return
        }
        guard let request = self.inboundHead.takeRequest() else {
            stream.sendResponse(HTTPResponse(status: .badRequest), endStream: true)
            return
        }
        stream.streamDelegate = responder.stream(stream, didReceive: request, connection: self.connectionInfo)
        // A client waiting to send its body (`Expect: 100-continue`) is told to go on once the responder has
        // seen the head without answering it (a refusal on the head is the final answer alone); curl
        // otherwise waits a second before sending it (helper-127). As ``HTTP1ContinueHandler`` does.
        if bodyFollows, !stream.headSent, !stream.closed,
            let expect = request.headerFields[.expect], HTTP1ContinueHandler.asksToContinue(expect)
        {
            self.submitContinue(on: stream)
        }
    }

    /// The codes nghttp2 resets a stream with for its peer's error (RFC 9113 §5.4.2 stream errors).
    static func isPeerFault(_ code: UInt32) -> Bool {
        code == NGHTTP2_PROTOCOL_ERROR.rawValue || code == NGHTTP2_FLOW_CONTROL_ERROR.rawValue
            || code == NGHTTP2_STREAM_CLOSED.rawValue || code == NGHTTP2_FRAME_SIZE_ERROR.rawValue
    }

    // MARK: Data and stream ends (on_data_chunk_recv, on_frame_recv for DATA, on_stream_close)

    /// Body bytes arrived on `streamID`.
    ///
    /// Connection-level credit goes back as data arrives;
    /// stream-level credit only as the application consumes (or at once when nobody reads or the
    /// stream drains).
    @inline(__always)
    func receivedData(session: OpaquePointer?, streamID: Int32, bytes: UnsafeRawBufferPointer) {
        nghttp2_session_consume_connection(session, bytes.count)
        let stream = self.stream(streamID)
        // A body still arriving after an answer that did not wait for it: dropped (`+EarlyResponse.swift`).
        if let stream, stream.drain != nil { return self.drained(bytes.count, of: stream) }
        guard let stream, let delegate = stream.delegate, let context = self.context else {
            nghttp2_session_consume_stream(session, streamID, bytes.count)
            return
        }
        delegate.streamDidReceiveData(context.channel.allocator.buffer(bytes: bytes))
    }

    /// A DATA frame with END_STREAM arrived on `streamID`.
    @inline(__always)
    func receivedEndOfData(streamID: Int32) {
        if let stream = self.stream(streamID) { self.endReceived(on: stream, trailers: nil) }
    }

    func endReceived(on stream: HTTP2Stream, trailers: HTTPFields?) {
        guard !stream.receivedEnd else { return }
        stream.receivedEnd = true
        stream.delegate?.streamDidReceiveEnd(trailers: trailers)
    }

    /// The bytes held in the connection's two HPACK dynamic tables (RFC 7541 §4.1): the one its
    /// own field blocks are encoded with, and the one the peer's are decoded with.
    var dynamicTableSizes: (encoding: Int, decoding: Int) {
        guard let session = self.session else { return (0, 0) }
        return (
            nghttp2_session_get_hd_deflate_dynamic_table_size(session),
            nghttp2_session_get_hd_inflate_dynamic_table_size(session)
        )
    }

    /// nghttp2 closed `streamID` with `errorCode` (0 when it ended cleanly or was never answered).
    @inline(__always)
    func streamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = self.streams.remove(streamID) else { return }
        // Closed in the middle of its header block (we reset it between a HEADERS and its CONTINUATION):
        // nghttp2 still hands over the rest of the block, unvalidated, for a stream it no longer has.
        if self.inboundHead.streamID == streamID { self.inboundHead.purpose = .ignored }
        // A stream nghttp2 reset for the peer's error without telling us first — a DATA frame past the
        // request's content-length (helper-128: 2,400 such resets a second, no GOAWAY) — counts as a
        // reset the peer made us send, as one reported as an invalid frame does (MadeYouReset).
        if errorCode != 0, !stream.resetCounted, stream.delegateErrorOverride == nil,
            Self.isPeerFault(errorCode)
        {
            self.enforce(self.dos.receivedReset(at: self.coarseNow))
        }
        let error: HTTPStreamError? =
            errorCode == 0 && stream.receivedEnd
            ? nil
            : stream.delegateErrorOverride
                ?? HTTPStreamError(code: errorCode == 0 ? .cancel : HTTP2ErrorCode(rawValue: errorCode), byPeer: true)
        stream.markClosed(error: error)
        self.apply(self.stateMachine.streamClosed())
    }
}
