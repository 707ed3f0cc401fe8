internal import CNGHTTP2
import NIOCore

/// The C callbacks nghttp2 calls during `mem_recv` and `mem_send`.
///
/// Each is a `@convention(c)` function without captures: the session's user data is an
/// unretained pointer to the ``HTTP2ConnectionHandler`` (which owns and outlives the session).
/// They only translate: unpack the C arguments and call one event of the handler's session
/// interface (`HTTP2ConnectionHandler+Session.swift`); they read or write no handler state.
/// Returning non-zero from a callback other than the documented codes makes nghttp2 fail the
/// whole session, so they return 0 and the handler acts through nghttp2's own API (RST_STREAM,
/// terminate) instead.
enum NGHTTP2Callbacks {
    static func install(on callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, onBeginFrame)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, onInvalidFrameRecv)
    }

    @inline(__always)
    static func handler(_ userData: UnsafeMutableRawPointer?) -> HTTP2ConnectionHandler {
        Unmanaged<HTTP2ConnectionHandler>.fromOpaque(userData!).takeUnretainedValue()
    }

    /// The starts of header blocks (CONTINUATION counting), and WINDOW_UPDATE and PRIORITY frames:
    /// counted here, before nghttp2 looks up their stream, because on a closed stream it drops them
    /// without `on_frame_recv` (helper-86: a flood on a stream that had ended went uncounted). DATA
    /// frames pass through.
    static let onBeginFrame: nghttp2_on_begin_frame_callback = { _, hd, userData in
        switch UInt32(hd!.pointee.type) {
        case NGHTTP2_HEADERS.rawValue: handler(userData).receivedHeadersFrameHeader()
        case NGHTTP2_CONTINUATION.rawValue: handler(userData).receivedContinuationFrameHeader()
        case NGHTTP2_WINDOW_UPDATE.rawValue: handler(userData).receivedWindowUpdate()
        case NGHTTP2_PRIORITY.rawValue: handler(userData).receivedPriority()
        default: break
        }
        return 0
    }

    static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        let frame = frame!.pointee
        handler(userData).headerBlockBegins(
            streamID: frame.hd.stream_id, isRequest: frame.headers.cat == NGHTTP2_HCAT_REQUEST)
        return 0
    }

    static let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
        let accepted = handler(userData).receivedHeaderField(
            streamID: frame!.pointee.hd.stream_id,
            name: UnsafeBufferPointer(start: name, count: nameLength),
            value: UnsafeBufferPointer(start: value, count: valueLength))
        return accepted ? 0 : Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }

    static let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
        let handler = handler(userData)
        let frame = frame!.pointee
        let type = UInt32(frame.hd.type)
        let endStream = (UInt32(frame.hd.flags) & NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        let isAck = (UInt32(frame.hd.flags) & NGHTTP2_FLAG_ACK.rawValue) != 0
        switch type {
        case NGHTTP2_HEADERS.rawValue:
            handler.receivedHeaders(streamID: frame.hd.stream_id, endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            if endStream {
                handler.receivedEndOfData(streamID: frame.hd.stream_id)
            } else if frame.hd.length <= frame.data.padlen {
                // No data, only padding at most. (On a closed stream nghttp2 drops a DATA frame before
                // any callback: such a flood costs us what it costs the peer to send, as unknown frame
                // types do.)
                handler.receivedEmptyData()
            }
        case NGHTTP2_RST_STREAM.rawValue:
            handler.receivedReset(streamID: frame.hd.stream_id)
        case NGHTTP2_PING.rawValue:
            if isAck {
                var opaque: UInt64 = 0
                withUnsafeBytes(of: frame.ping.opaque_data) { source in
                    withUnsafeMutableBytes(of: &opaque) { $0.copyMemory(from: source) }
                }
                handler.receivedPingAck(opaque: UInt64(bigEndian: opaque))
            } else {
                handler.receivedPing()
            }
        case NGHTTP2_SETTINGS.rawValue:
            if isAck { handler.receivedSettingsAck() } else { handler.receivedSettings() }
        case NGHTTP2_GOAWAY.rawValue:
            // The debug data says why (a gateway's refusal of a car names its reason there); at most
            // 256 bytes of it are read, as text.
            let debug =
                frame.goaway.opaque_data.map {
                    String(
                        decoding: UnsafeBufferPointer(start: $0, count: min(frame.goaway.opaque_data_len, 256)),
                        as: UTF8.self)
                } ?? ""
            handler.receivedGoAway(
                lastStreamID: frame.goaway.last_stream_id, errorCode: frame.goaway.error_code, debugData: debug)
        default:
            break
        }
        return 0
    }

    static let onDataChunkRecv: nghttp2_on_data_chunk_recv_callback = { session, _, streamID, data, length, userData in
        handler(userData).receivedData(
            session: session, streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
        return 0
    }

    /// A frame nghttp2 found invalid: for a stream error it resets the stream itself. Rare in honest
    /// traffic, so no cost per frame.
    static let onInvalidFrameRecv: nghttp2_on_invalid_frame_recv_callback = { _, frame, _, userData in
        handler(userData).receivedInvalidFrame(streamID: frame?.pointee.hd.stream_id ?? 0)
        return 0
    }

    static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
        handler(userData).streamClosed(streamID: streamID, errorCode: errorCode)
        return 0
    }

    /// The deferred data provider: copies queued bytes for nghttp2, or defers until more arrive.
    static let readData: nghttp2_data_source_read_callback = { session, streamID, buffer, length, flags, _, userData in
        handler(userData).dataRequested(
            session: session, streamID: streamID,
            into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags!)
    }
}
