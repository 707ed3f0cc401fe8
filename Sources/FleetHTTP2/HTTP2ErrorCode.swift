/// An HTTP/2 error code as carried by `RST_STREAM` and `GOAWAY` (RFC 9113 §7).
///
/// A struct rather than an enum so that codes this module does not name still round-trip.
public struct HTTP2ErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The code on the wire.
    public var rawValue: UInt32

    /// Wraps a code read from the wire.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// Graceful end; not an error.
    public static let noError = Self(0x0)
    /// The peer broke the protocol.
    public static let protocolError = Self(0x1)
    /// An internal failure on our side.
    public static let internalError = Self(0x2)
    /// The peer broke flow control.
    public static let flowControlError = Self(0x3)
    /// The peer sent a frame on a stream it had closed.
    public static let streamClosed = Self(0x5)
    /// A frame had an invalid size.
    public static let frameSizeError = Self(0x6)
    /// The stream was refused before any processing; always safe to retry (RFC 9113 §8.7).
    public static let refusedStream = Self(0x7)
    /// The stream is no longer needed (the client went away).
    public static let cancel = Self(0x8)
    /// The peer is generating excessive load (floods, rapid reset).
    public static let enhanceYourCalm = Self(0xB)

    public var description: String {
        switch self.rawValue {
        case 0x0: "NO_ERROR"
        case 0x1: "PROTOCOL_ERROR"
        case 0x2: "INTERNAL_ERROR"
        case 0x3: "FLOW_CONTROL_ERROR"
        case 0x4: "SETTINGS_TIMEOUT"
        case 0x5: "STREAM_CLOSED"
        case 0x6: "FRAME_SIZE_ERROR"
        case 0x7: "REFUSED_STREAM"
        case 0x8: "CANCEL"
        case 0x9: "COMPRESSION_ERROR"
        case 0xA: "CONNECT_ERROR"
        case 0xB: "ENHANCE_YOUR_CALM"
        case 0xC: "INADEQUATE_SECURITY"
        case 0xD: "HTTP_1_1_REQUIRED"
        default: "0x\(String(self.rawValue, radix: 16))"
        }
    }
}
