internal import CNGHTTP2
import HTTPTypes
import NIOCore

/// The C callbacks nghttp2 calls during `mem_recv` and `mem_send`.
///
/// Each is a `@convention(c)` function without captures: the session's user data is an
/// unretained pointer to the ``HTTP2ConnectionHandler`` (which owns and outlives the session),
/// and streams are found by id in the handler's dictionary. Returning non-zero from a callback
/// other than the documented codes makes nghttp2 fail the whole session, so we return 0 and
/// act through nghttp2's own API (RST_STREAM, terminate) instead.
enum NGHTTP2Callbacks {
    static func install(on callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, onBeginFrame)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
    }

    @inline(__always)
    static func handler(_ userData: UnsafeMutableRawPointer?) -> HTTP2ConnectionHandler {
        Unmanaged<HTTP2ConnectionHandler>.fromOpaque(userData!).takeUnretainedValue()
    }

    static let onBeginFrame: nghttp2_on_begin_frame_callback = { _, hd, userData in
        let handler = handler(userData)
        let type = UInt32(hd!.pointee.type)
        if type == NGHTTP2_HEADERS.rawValue {
            handler.continuationFrames = 0
        } else if type == NGHTTP2_CONTINUATION.rawValue {
            handler.continuationFrames += 1
            if handler.continuationFrames > handler.configuration.maxContinuationFrames {
                handler.terminate(.enhanceYourCalm)
            }
        }
        return 0
    }

    static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        let handler = handler(userData)
        let frame = frame!.pointee
        let id = frame.hd.stream_id
        if handler.isServer && frame.headers.cat == NGHTTP2_HCAT_REQUEST {
            let stream = HTTP2Stream(id: id, connection: handler, delegate: nil)
            handler.streams[id] = stream
            handler.cachedStream = stream
            handler.apply(handler.stateMachine.streamOpened())
        } else if let stream = handler.stream(id) {
            stream.pseudo.reset()
            stream.fields = HTTPFields()
            stream.headerListBytes = 0
        }
        return 0
    }

    static let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
        let handler = handler(userData)
        guard let stream = handler.stream(frame!.pointee.hd.stream_id) else { return 0 }
        // RFC 9113 §6.5.2: the list size counts each field's name, value and 32 bytes.
        stream.headerListBytes += nameLength + valueLength + 32
        if stream.headerListBytes > handler.configuration.maxHeaderListSize {
            // Stop here: nghttp2 resets the stream and skips the rest of the block (it still
            // inflates it to keep HPACK in step, but validates and copies nothing). Going on
            // would let a 256 KiB HPACK bomb cost a gigabyte of validation (issue #18 row 6).
            stream.headerListTooLarge = true
            if handler.dos.headerListTooLarge(now: handler.eventLoop.now) == .enhanceYourCalm {
                handler.terminate(.enhanceYourCalm)
            }
            return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let nameBytes = UnsafeBufferPointer(start: name, count: nameLength)
        let valueBytes = UnsafeBufferPointer(start: value, count: valueLength)
        if nameLength > 1 && nameBytes[0] == UInt8(ascii: ":") {
            // nghttp2 has validated pseudo-headers (RFC 9113 §8.3); tell them apart by length and a letter.
            let valueString = String(decoding: valueBytes, as: UTF8.self)
            switch (nameLength, nameBytes[1]) {
            case (7, UInt8(ascii: "m")): stream.pseudo.method = valueString
            case (7, UInt8(ascii: "s")) where nameBytes[2] == UInt8(ascii: "c"): stream.pseudo.scheme = valueString
            case (7, UInt8(ascii: "s")): stream.pseudo.status = valueString
            case (10, UInt8(ascii: "a")): stream.pseudo.authority = valueString
            case (5, UInt8(ascii: "p")): stream.pseudo.path = valueString
            default: break
            }
            return 0
        }
        // nghttp2 has validated names (lowercase tokens) and values (RFC 9113 §8.2.1).
        if let fieldName = HTTPField.Name(parsed: String(decoding: nameBytes, as: UTF8.self)) {
            stream.fields.append(HTTPField(name: fieldName, lenientValue: valueBytes))
        }
        return 0
    }

    static let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
        let handler = handler(userData)
        let frame = frame!.pointee
        let type = UInt32(frame.hd.type)
        let endStream = (UInt32(frame.hd.flags) & NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        let isAck = (UInt32(frame.hd.flags) & NGHTTP2_FLAG_ACK.rawValue) != 0
        switch type {
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = handler.stream(frame.hd.stream_id) else { return 0 }
            handler.headersReceived(on: stream, endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            if endStream, let stream = handler.stream(frame.hd.stream_id) {
                handler.endReceived(on: stream, trailers: nil)
            }
        case NGHTTP2_RST_STREAM.rawValue:
            if handler.dos.resetReceived(now: handler.eventLoop.now) == .enhanceYourCalm {
                handler.terminate(.enhanceYourCalm)
            }
        case NGHTTP2_PING.rawValue:
            if isAck {
                var opaque: UInt64 = 0
                withUnsafeBytes(of: frame.ping.opaque_data) { source in
                    withUnsafeMutableBytes(of: &opaque) { $0.copyMemory(from: source) }
                }
                handler.pingAcknowledged(opaque: UInt64(bigEndian: opaque))
            } else if handler.dos.pingReceived(now: handler.eventLoop.now) == .enhanceYourCalm {
                handler.terminate(.enhanceYourCalm)
            }
        case NGHTTP2_SETTINGS.rawValue:
            if isAck {
                handler.handshakeComplete = true
                handler.handshakeTimer?.cancel()
            } else if handler.dos.settingsReceived(now: handler.eventLoop.now) == .enhanceYourCalm {
                handler.terminate(.enhanceYourCalm)
            }
        case NGHTTP2_GOAWAY.rawValue:
            handler.delegate?.connectionDidReceiveGoAway(
                lastStreamID: frame.goaway.last_stream_id,
                errorCode: HTTP2ErrorCode(rawValue: frame.goaway.error_code)
            )
        default:
            break
        }
        return 0
    }

    static let onDataChunkRecv: nghttp2_on_data_chunk_recv_callback = { session, _, streamID, data, length, userData in
        let handler = handler(userData)
        // Connection-level credit as data arrives; stream-level credit only as it is consumed.
        nghttp2_session_consume_connection(session, length)
        guard let stream = handler.stream(streamID), let delegate = stream.delegate, let context = handler.context
        else {
            nghttp2_session_consume_stream(session, streamID, length)
            return 0
        }
        let buffer = context.channel.allocator.buffer(bytes: UnsafeRawBufferPointer(start: data, count: length))
        delegate.streamDidReceiveData(buffer)
        return 0
    }

    static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
        let handler = handler(userData)
        guard let stream = handler.streams.removeValue(forKey: streamID) else { return 0 }
        if handler.cachedStream === stream { handler.cachedStream = nil }
        let error: HTTPStreamError? =
            errorCode == 0 && stream.receivedEnd
            ? nil
            : stream.delegateErrorOverride
                ?? HTTPStreamError(code: errorCode == 0 ? .cancel : HTTP2ErrorCode(rawValue: errorCode), byPeer: true)
        stream.markClosed(error: error)
        handler.apply(handler.stateMachine.streamClosed())
        return 0
    }

    /// The deferred data provider: copies queued bytes for nghttp2, or defers until more arrive.
    static let readData: nghttp2_data_source_read_callback = { session, streamID, buffer, length, flags, _, userData in
        let handler = handler(userData)
        guard let stream = handler.stream(streamID) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let written = stream.pull(into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
        if stream.drainedBelowLowWatermark() { handler.pendingWritable.append(stream) }
        if stream.bufferedOutboundBytes == 0 {
            if stream.endRequested {
                flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = stream.trailers {
                    flags!.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
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

extension HTTP2ConnectionHandler {
    /// A complete header block arrived on `stream`: a head, or trailers.
    func headersReceived(on stream: HTTP2Stream, endStream: Bool) {
        if !stream.receivedHead {
            if self.isServer {
                stream.receivedHead = true
                self.requestReceived(on: stream)
            } else {
                guard let statusString = stream.pseudo.status, let code = Int(statusString) else {
                    stream.reset(.protocolError)
                    return
                }
                if (100..<200).contains(code) { return }  // informational: wait for the final head
                stream.receivedHead = true
                var response = HTTPResponse(status: .init(code: code))
                response.headerFields = stream.fields
                stream.delegate?.streamDidReceiveResponse(response)
            }
            if endStream { self.endReceived(on: stream, trailers: nil) }
        } else {
            self.endReceived(on: stream, trailers: stream.fields)
        }
    }

    private func requestReceived(on stream: HTTP2Stream) {
        guard case .server(let responder) = self.role else { return }
        if stream.headerListTooLarge {
            stream.sendResponse(HTTPResponse(status: .requestHeaderFieldsTooLarge), endStream: true)
            return
        }
        guard let methodString = stream.pseudo.method, let method = HTTPRequest.Method(methodString) else {
            stream.sendResponse(HTTPResponse(status: .badRequest), endStream: true)
            return
        }
        var request = HTTPRequest(
            method: method,
            scheme: stream.pseudo.scheme,
            authority: stream.pseudo.authority,
            path: stream.pseudo.path
        )
        request.headerFields = stream.fields
        stream.fields = HTTPFields()
        stream.delegate = responder.stream(stream, didReceive: request, connection: self.connectionInfo)
    }

    func endReceived(on stream: HTTP2Stream, trailers: HTTPFields?) {
        guard !stream.receivedEnd else { return }
        stream.receivedEnd = true
        stream.delegate?.streamDidReceiveEnd(trailers: trailers)
    }
}
